"""One vocabulary across results and CLI: the same flags, files, JSON keys and piped output everywhere."""

import json
import re

import pytest
import torch

pytest.importorskip("typer")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

import integrad  # noqa: E402
from integrad.cli import app  # noqa: E402
from integrad.image import explain_image  # noqa: E402
from integrad.tabular import explain_row, load_tabular_model  # noqa: E402
from integrad.text import explain_text  # noqa: E402
from text_fixtures import tiny_bert, wordpiece_tokenizer  # noqa: E402

OUTPUTS = {"--html": "x.html", "--png": "x.png", "--json": "x.json", "--save": "x.safetensors"}
SHARED = {"--method", "--n-steps", "--rtol", "--batch-size", "--seed", "--target", *OUTPUTS}
# what every explanation's to_dict holds, with the same meaning
COMMON = {"model", "target", "prediction", "baseline", "delta", "relative_delta", "error", "accuracy", "f_x",
          "f_baseline", "n_evals", "settings", "integrad_version", "attributions_file"}


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A tiny BERT classifier saved as a Hugging Face directory, for ``--model``."""
    where = tmp_path_factory.mktemp("tiny") / "m"
    tok = wordpiece_tokenizer()
    tiny_bert(len(tok)).save_pretrained(where)
    tok.save_pretrained(where)
    return where


def _commands(text_model):
    return {
        "text": ["explain", "text", "a wonderful film", "--model", text_model, "--n-steps", 4],
        "tabular": ["explain", "tabular", "--row", 0, "--n-steps", 4],
        "image": ["explain", "image", "chelsea", "--n-steps", 4],
    }


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_every_explain_command_has_the_shared_options():
    import typer

    explain = typer.main.get_command(app).commands["explain"]
    for name in ("text", "image", "tabular"):
        flags = {opt for p in explain.commands[name].params for opt in p.opts}
        assert SHARED <= flags, (name, SHARED - flags)


@pytest.mark.parametrize("command", ["text", "tabular", "image"])
def test_writes_exactly_the_four_files_asked_for(command, text_model, invoke, tmp_path):
    args = _commands(text_model)[command]
    res = invoke(*args, "--batch-size", 3, *(a for flag, name in OUTPUTS.items() for a in (flag, name)))
    assert res.exit_code == 0, res.output
    assert _files(tmp_path) == sorted(OUTPUTS.values())
    d = json.loads((tmp_path / "x.json").read_text())
    assert COMMON <= set(d) and d["attributions_file"] == "x.safetensors"
    assert d["settings"]["batch_size"] == 3
    assert (tmp_path / "x.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = integrad.Attribution.load(tmp_path / "x.safetensors")
    assert back.settings["explanation"]["delta"] == pytest.approx(d["delta"])
    assert back.settings["explanation"]["target"] == d["target"]


@pytest.mark.parametrize("command", ["text", "tabular", "image"])
def test_no_flags_write_no_files_and_piped_numbers_carry_signs(command, text_model, invoke, tmp_path):
    res = invoke(*_commands(text_model)[command])
    assert res.exit_code == 0, res.output
    assert _files(tmp_path) == []  # the image command used to write <name>-integrad.png unasked
    assert "\x1b[" not in res.output  # no colour codes when piped
    assert re.search(r"^accuracy: ", res.output, re.M), res.output
    assert re.search(r"completeness gap[^\n]*[+-]\d", res.output), res.output
    if command == "text":
        words = re.search(r"^words: (.*)$", res.output, re.M).group(1)
        assert re.fullmatch(r"(\S+ [+-]\d+\.\d{3})(, \S+ [+-]\d+\.\d{3})*", words), words
        assert [w.split(" ")[0] for w in words.split(", ")] == ["a", "wonderful", "film"]
    if command == "tabular":
        # each reason code row: its sign, then its signed number
        rows = re.findall(r"^ ([+-]) .* ([+-]\d\.\d{4}) *$", res.output, re.M)
        assert rows and all(sign == number[0] for sign, number in rows), res.output


def test_image_out_is_a_deprecated_alias_of_png(invoke, tmp_path):
    res = invoke("explain", "image", "chelsea", "--n-steps", 4, "--out", "o.png")
    assert res.exit_code == 0, res.output
    assert "note: --out is deprecated; use --png" in res.output
    assert _files(tmp_path) == ["o.png"]
    res = invoke("explain", "image", "chelsea", "--out", "a.png", "--png", "b.png")
    assert res.exit_code == 2 and "error: --out and --png: give one" in res.output


@pytest.mark.parametrize("flag", list(OUTPUTS))
@pytest.mark.parametrize("command", ["text", "tabular", "image"])
def test_missing_output_folder_fails_before_any_work(command, flag, invoke, tmp_path):
    # each command is also given an input that would fail once work started: the output check comes first
    broken = {"text": ["explain", "text", "good", "--model", tmp_path / "no-model"],
              "tabular": ["explain", "tabular", "--row", 10**6],
              "image": ["explain", "image", tmp_path / "no-image.png"]}[command]
    res = invoke(*broken, flag, tmp_path / "no" / "such" / OUTPUTS[flag])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).startswith(f"error: {flag}: the folder"), res.output
    assert "Traceback" not in res.output and _files(tmp_path) == []


def test_version(invoke):
    res = invoke("--version")
    assert res.exit_code == 0 and res.output == f"integrad {integrad.__version__}\n"


@pytest.mark.parametrize("argv", [[], ["explain"], ["explain", "text"], ["explain", "image"],
                                  ["explain", "tabular"], ["demo"]])
def test_h_is_help(argv, invoke):
    short, long = invoke(*argv, "-h"), invoke(*argv, "--help")
    assert short.exit_code == 0 and "Usage:" in short.output
    assert short.output == long.output


def _explanations():
    tok = wordpiece_tokenizer()
    text = explain_text(tiny_bert(len(tok)), tok, "good movie", n_steps=4)
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4)).double().eval()
    image = explain_image(net, torch.rand(3, 6, 6, generator=g, dtype=torch.float64), n_steps=4)
    row = explain_row(load_tabular_model("german-credit"), 0, n_steps=4, n_reference=8)
    return {"text": text, "image": image, "tabular": row}


@pytest.fixture(scope="module")
def explanations():
    return _explanations()


def test_to_dict_has_the_same_common_keys_and_target_shape(explanations):
    for name, ex in explanations.items():
        d = json.loads(json.dumps(ex.to_dict()))
        assert COMMON <= set(d), (name, COMMON - set(d))
        assert {"index", "label", "probability"} <= set(d["target"]), name
        assert set(d["prediction"]) == {"label", "probability"}, name
        assert d["prediction"] == {"label": ex.label, "probability": pytest.approx(ex.probability)}, name
        assert d["delta"] == pytest.approx(ex.delta) and d["error"] == pytest.approx(ex.error, nan_ok=True)
        assert d["n_evals"] == int(ex.result.n_evals.sum()) and d["attributions_file"] is None
        assert d["integrad_version"] == integrad.__version__
    text, image, row = (explanations[k].to_dict() for k in ("text", "image", "tabular"))
    assert text["target"]["index"] == explanations["text"].result.settings["target"]
    assert text["target"]["label"] == explanations["text"].target
    assert image["target"]["index"] == explanations["image"].target and image["attributions_shape"] == [3, 6, 6]
    assert row["target"] == {"index": None, "label": "good",  # the credit model has one logit
                             "probability": pytest.approx(explanations["tabular"].target_probability)}


def test_save_round_trips_through_attribution_load(explanations, tmp_path):
    for name, ex in explanations.items():
        ex.save(tmp_path / f"{name}.safetensors")
        back = integrad.Attribution.load(tmp_path / f"{name}.safetensors")
        assert torch.equal(back.attributions, ex.result.attributions.cpu()), name
        kept = back.settings["explanation"]
        want = json.loads(json.dumps(ex.to_dict()))
        assert kept == {k: v for k, v in want.items() if k != "settings"}, name


def test_html_pages_are_self_contained_and_escaped(explanations):
    for name, ex in explanations.items():
        page = ex.to_html()
        assert page.startswith("<!doctype html>") and "<meta charset='utf-8'>" in page and "<title>" in page, name
        assert "http://" not in page and "https://" not in page, name
        assert ex._repr_html_() in page, name


def test_text_png_is_written_and_max_words_checked(explanations, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    ex = explanations["text"]
    ex.to_png(tmp_path / "t.png")
    assert Image.open(tmp_path / "t.png").format == "PNG"
    with pytest.raises(ValueError, match=r"max_words: expected an int >= 1; got 0"):
        ex.to_png(tmp_path / "u.png", max_words=0)


def test_to_dict_is_standard_json_for_exact_results():
    import json

    import torch

    from integrad.image import explain_image

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 3)).double().eval()
    ex = explain_image(net, torch.rand(3, 8, 8, dtype=torch.float64), method="piecewise")
    d = ex.to_dict()
    assert d["error"] is None and ex.accuracy.startswith("exact")
    json.dumps(d, allow_nan=False)  # no NaN or Infinity in the output
