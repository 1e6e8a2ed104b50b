#!/usr/bin/env bash
# Build the SegLens offline bundle (dist/seglens/, one folder) from this checkout and smoke-test it, so that a
# missing hidden import or data file fails here and not on a user's machine.
#
#   bash packaging/build.sh            # reuses build/bundle-venv if it exists
#   bash packaging/build.sh --fresh    # recreates the venv first (what a clean clone gets anyway)
#
# Environment: PYTHON (interpreter for the venv, default python3), SEGLENS_BUNDLE_VENV (venv folder, default
# build/bundle-venv), SEGLENS_BUNDLE_MAX_MB (size limit of dist/seglens, default 350), KEEP_TMP=1 (keep the
# smoke test's scratch folder).
# Everything it writes (build/, dist/) is git-ignored. Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${SEGLENS_BUNDLE_VENV:-$ROOT/build/bundle-venv}"
MAX_MB="${SEGLENS_BUNDLE_MAX_MB:-350}"
PYINSTALLER_PINS=(pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9)
DIST="$ROOT/dist"
BUNDLE="$DIST/seglens"
EXE="$BUNDLE/seglens"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'packaging/build.sh: FAILED: %s\n' "$*" >&2; exit 1; }

start=$(date +%s)
if [[ "${1:-}" == "--fresh" ]]; then
  rm -rf "$VENV"
fi

step "venv $VENV (app without extras + PyInstaller)"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# A plain install of the project (no extras): exactly what the bundle should contain, nothing more.
"$VENV/bin/python" -m pip install -q . "${PYINSTALLER_PINS[@]}"
# A reused venv someone installed an extra into by hand: say so (the spec's excludes keep it out).
for heavy in tensorflow torch transformers keras fastapi scipy matplotlib; do
  if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$heavy') is None)"; then
    echo "note: $heavy is installed in $VENV; the spec excludes it from the bundle anyway"
  fi
done

step "pyinstaller"
build_start=$(date +%s)
rm -rf "$BUNDLE"
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" packaging/pyinstaller.spec
[[ -x "$EXE" ]] || fail "no executable at $EXE"
echo "pyinstaller took $(( $(date +%s) - build_start )) s"

step "bundled libraries resolve (in the bundle or on this system)"
# A Qt plugin whose library was trimmed away, or a system library the bundle expects, shows up here.
unresolved=0
while IFS= read -r -d '' lib; do
  if out="$(LD_LIBRARY_PATH="$BUNDLE/_internal:$BUNDLE/_internal/PySide6/Qt/lib" ldd "$lib" 2>/dev/null \
            | grep 'not found')"; then
    echo "${lib#"$BUNDLE/"}:"$'\n'"$out"
    unresolved=1
  fi
done < <(find "$BUNDLE" -type f \( -name '*.so' -o -name '*.so.*' \) -print0)
dangling="$(find "$BUNDLE" -xtype l)"
[[ -z "$dangling" ]] || { echo "$dangling"; unresolved=1; echo "(dangling links: trimmed in the spec, linked by PyInstaller)"; }
(( unresolved == 0 )) || fail "bundled libraries with unresolved dependencies (above)"
echo "ok"

step "smoke test (from a scratch working directory, offscreen)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/seglens-bundle-smoke.XXXXXX")"
if [[ "${KEEP_TMP:-0}" != 1 ]]; then
  trap 'rm -rf "$TMP"' EXIT
fi
mkdir -p "$TMP/cwd" "$TMP/xdg"
cd "$TMP/cwd"  # the bundle must find its models and resources without the checkout's cwd
export QT_QPA_PLATFORM=offscreen
export SEGLENS_CACHE="$TMP/cache" SEGLENS_CONFIG="$TMP/config" XDG_CONFIG_HOME="$TMP/xdg"
unset SEGLENS_MODELS PYTHONPATH PYTHONHOME

version_expected="$("$VENV/bin/python" -c 'import app; print(app.__version__)')"
version_out="$("$EXE" --version)" || fail "--version exited $?"
echo "$version_out"
[[ "$version_out" == "SegLens $version_expected" ]] || fail "--version says '$version_out', expected SegLens $version_expected"

"$EXE" demo-data --out "$TMP/demo" --count 3 --size 128x256 || fail "demo-data exited $?"

# The model to evaluate: the bundled demo model A (read from the bundle, not the checkout), or else a tiny
# ONNX model written with the build venv's onnx (independent of the bundle).
demo_json="$BUNDLE/_internal/models/demo/demo.json"
if [[ -f "$demo_json" ]]; then
  model="$BUNDLE/_internal/models/demo/$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["a"])' "$demo_json")"
  echo "evaluating the bundled demo model $model"
else
  model="$TMP/tiny.onnx"
  echo "no demo models bundled (models/demo/demo.json missing): evaluating a tiny generated ONNX model"
  "$VENV/bin/python" - "$model" <<'PY'
import json, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from app.core.domain.labels import TRAINIDS

k = len(TRAINIDS.names)
w = np.random.default_rng(0).normal(size=(k, 3, 1, 1)).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("Conv", ["image", "w"], ["logits"])],
    "tiny",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k, "h", "w"])],
    initializer=[numpy_helper.from_array(w, "w")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
helper.set_model_props(model, {
    "seglens.class_names": json.dumps(list(TRAINIDS.names)),
    "seglens.output": "logits",
    "seglens.resize": "any",
})
onnx.checker.check_model(model, full_check=True)
onnx.save(model, sys.argv[1])
PY
fi
"$EXE" evaluate --dataset "$TMP/demo" --model "$model" --json "$TMP/r.json" --quiet || fail "evaluate exited $?"
"$VENV/bin/python" - "$TMP/r.json" <<'PY' || fail "evaluate wrote no valid result JSON"
import json, math, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
model = doc["models"][0]
assert model["images_evaluated"] == 3 and not model["errors"], (model["images_evaluated"], model["errors"])
miou = model["metrics"]["miou"]
assert miou is None or 0.0 <= miou <= 1.0, miou
print(f"result JSON ok: {model['name']}, {model['images_evaluated']} images, mIoU {miou}")
PY

# Sub-commands imported by name at run time: importing them is what fails when a hidden import is missing.
for command in quantize benchmark; do
  "$EXE" "$command" --help >/dev/null || fail "seglens $command --help exited $?"
done
# Models the bundle does not run must fail with a message, not a traceback.
printf 'not a real model' >"$TMP/native.keras"
set +e
native_msg="$("$EXE" evaluate --dataset "$TMP/demo" --model "$TMP/native.keras" --quiet 2>&1)"
native_rc=$?
set -e
echo "a Keras model in the bundle (exit $native_rc): $native_msg"
[[ $native_rc == 2 && "$native_msg" != *Traceback* ]] || fail "opening a Keras model did not fail cleanly"

# The window, on the demo (generated into SEGLENS_CACHE by the GUI's worker pool), offscreen, and on xcb
# under Xvfb when xvfb-run is installed (SEGLENS_BUNDLE_XCB=0 skips that). With SEGLENS_SMOKE_TEST=SECONDS
# the app quits by itself once the window is shown and the first evaluation finished (exit 0; 3 = an error
# was reported; 4 = nothing finished in time). An app without that hook is started for GUI_SECONDS and must
# still be running then (timeout's exit 124), not crashed.
GUI_SECONDS="${GUI_SECONDS:-25}"
gui_args=()
[[ -f "$demo_json" ]] || gui_args=(--model-a "$model")  # no demo models: give the window one to evaluate
if grep -q SEGLENS_SMOKE_TEST "$ROOT/app/controllers/app_launch.py"; then smoke_hook=1; else smoke_hook=0; fi

run_gui() {  # run_gui PLATFORM [launcher...]
  local platform=$1 limit=$GUI_SECONDS rc log="$TMP/gui-$1.log"
  shift
  (( smoke_hook )) && limit=180
  set +e
  QT_QPA_PLATFORM=$platform SEGLENS_SMOKE_TEST=$((limit - 10)) \
    "$@" timeout -k 10 "$limit" "$EXE" "${gui_args[@]}" >"$log" 2>&1
  rc=$?
  set -e
  sed "s/^/  gui $platform: /" "$log" | tail -n 20
  if grep -q -e Traceback -e 'Fatal Python error' -e 'Could not load the Qt platform plugin' "$log"; then
    fail "the window ($platform) reported an error"
  fi
  if (( smoke_hook )); then
    [[ $rc == 0 ]] || fail "the window ($platform) exited $rc (0 = shown, evaluated and closed)"
    echo "window ($platform) opened, evaluated and closed cleanly"
  else
    [[ $rc == 124 ]] || fail "the window ($platform) exited $rc within ${GUI_SECONDS}s (expected it running)"
    echo "window ($platform) still running after ${GUI_SECONDS}s (this app version has no SEGLENS_SMOKE_TEST)"
  fi
}

run_gui offscreen
ls "$SEGLENS_CACHE"/demo-v*/.complete >/dev/null 2>&1 \
  || fail "the window did not generate the demo dataset in $SEGLENS_CACHE"
if [[ "${SEGLENS_BUNDLE_XCB:-1}" != 0 ]] && command -v xvfb-run >/dev/null 2>&1; then
  run_gui xcb xvfb-run -a
fi
cd "$ROOT"

step "size"
size_mb=$(du -sm "$BUNDLE" | cut -f1)
du -sh "$BUNDLE"
du -h --max-depth=1 "$BUNDLE/_internal" | sort -rh | head -n 12
du -h --max-depth=1 "$BUNDLE/_internal/PySide6" 2>/dev/null | sort -rh | head -n 5
echo "built in $(( $(date +%s) - start )) s: $BUNDLE, ${size_mb} MB (limit ${MAX_MB} MB)"
(( size_mb <= MAX_MB )) || fail "the bundle is ${size_mb} MB, over the ${MAX_MB} MB limit"
echo "packaging/build.sh: OK"
