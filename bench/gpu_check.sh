#!/usr/bin/env bash
# The default pipeline on a GPU: `trainer.accelerator=auto` puts the teacher, identity model,
# label teachers, auditor, neural students and synthesis on CUDA. Writes per-stage seconds, the
# device and the stimuli's synthesis rate to bench/results/gpu.json (or $OUT/gpu.json when the
# device tool sets $OUT). CPU stays the tested path; run this whenever a GPU is lent:
#
#   bash bench/gpu_check.sh                 # the default run (apnea_cnn), fresh cache
#   STEPS=50 bash bench/gpu_check.sh        # a shorter synthesis, for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEST=${OUT:-bench/results}
WORK=$(mktemp -d)
mkdir -p "$DEST"
"$PY" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("bench/gpu_check.sh: no CUDA device visible to torch; nothing to measure")
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
EXTRA=()
if [ -n "${STEPS:-}" ]; then EXTRA+=("synthesis.steps=$STEPS"); fi
start=$(date +%s)
"$PY" -m stimuli.run +experiment=apnea_cnn trainer.accelerator=auto logger=none quiet=true \
    "hydra.run.dir=$WORK/run" "paths.cache_dir=$WORK/cache" "${EXTRA[@]}"
end=$(date +%s)
"$PY" - "$WORK/run/results.json" "$DEST/gpu.json" "$((end - start))" <<'PY'
import json, sys
import torch
results = json.load(open(sys.argv[1]))
stim = results.get("stimuli", {})
steps_per_s = stim["n"] * stim["steps"] / stim["seconds"] if stim.get("seconds") else None
out = {
    "command": "bash bench/gpu_check.sh",
    "device": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "wall_seconds": int(sys.argv[3]),
    "stage_seconds": results["timing"],
    "synthesis": {"n": stim.get("n"), "steps": stim.get("steps"),
                  "seconds": stim.get("seconds"), "stimulus_steps_per_s": steps_per_s},
    "teacher_test": results.get("teacher", {}).get("test"),
    "students_test": {k: {v: m.get("acc") for v, m in b.items() if "acc" in m}
                      for k, b in results.get("students", {}).items()},
}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(json.dumps(out, indent=1))
PY
