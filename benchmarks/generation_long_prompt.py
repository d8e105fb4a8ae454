"""A 1,000-token prompt with 16 target tokens on SmolLM2: time, block size and peak RSS (issue 14, item 6).

    .venv/bin/python benchmarks/generation_long_prompt.py      # 4 Gauss-Legendre steps: about 4 minutes on 2 cores
"""
import resource
import time

from integrad.models import load_language_model
from integrad.generation import explain_generation
m, tok = load_language_model()
words = ("the old lighthouse keeper watched the grey waves roll in while the gulls circled over the harbour " * 60)
ids = tok(words)["input_ids"][:1000]
prompt = tok.decode(ids)
print("prompt tokens", len(tok(prompt)["input_ids"]))
t = time.perf_counter()
ex = explain_generation(m, tok, prompt, target_tokens=list(range(100, 116)), n_steps=4)
print("s", round(time.perf_counter() - t, 1), ex.matrix.shape, ex.result.settings["batch_size"], "peak MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
