#!/usr/bin/env bash
# GPU check of the engines hfcl does not test on CPU: NPO+GradDiff unlearning and one continual strategy (replay,ewc)
# under DDP, FSDP2 and DeepSpeed ZeRO-3 (hfcl/configs/accelerate/*.yaml) on the tiny zoo; prints the final losses side
# by side. A few minutes on one GPU (tiny model; the zoo builds on first use, ~2 min). Needs: pip install deepspeed.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        NPROC=2 bash benchmarks/gpu_check.sh   (default: all GPUs)
#
# Expected: DDP, FSDP2 and ZeRO-3 losses agree to about 1e-3 (fp32, same global batch; engines sum in other orders).
# Under ZeRO-3, replay,ewc must be refused before training (EWC reads weights in the loss: a ConfigError naming the
# strategy), so ZeRO-3 runs replay alone and the refusal is checked.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-$(mktemp -d -t hfcl-gpu-check-XXXX)}"
NPROC="${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
[ "$NPROC" -ge 1 ] || { echo "no GPU found (nvidia-smi -L)" >&2; exit 1; }
CONFIGS=hfcl/configs/accelerate
PY="${PYTHON:-python}"
UNLEARN=(unlearn --zoo tiny --preset demo --optim adamw_torch --report_to none --disable_tqdm true --save_strategy no
         --per_device_train_batch_size $((8 / NPROC > 0 ? 8 / NPROC : 1)))
CONTINUAL=(continual --zoo tiny --n_tasks 2 --authors_per_task 1 --probe_size 5 --replay_ratio 0.5 --ewc_lambda 0.05
           --num_train_epochs 3 --learning_rate 0.02 --lr_scheduler_type constant --per_device_eval_batch_size 8
           --report_to none --disable_tqdm true --per_device_train_batch_size $((4 / NPROC > 0 ? 4 / NPROC : 1)))
mkdir -p "$OUT"
"$PY" -m hfcl.cli zoo --zoo tiny >/dev/null 2>&1 || true  # build once, outside the timed launches

launch() {  # launch ENGINE NAME ARGS...: one run, its log in $OUT/NAME-ENGINE.log
  local engine=$1 name=$2
  shift 2
  local start=$SECONDS
  timeout 600 accelerate launch --config_file "$CONFIGS/$engine.yaml" --num_processes "$NPROC" \
    --mixed_precision no --main_process_port $((29500 + RANDOM % 1000)) -m hfcl.cli "$@" \
    --output_dir "$OUT/$name-$engine" >"$OUT/$name-$engine.log" 2>&1
  local rc=$?
  echo "$name $engine: rc=$rc, $((SECONDS - start)) s (log $OUT/$name-$engine.log)"
  return $rc
}

for engine in ddp fsdp2 zero3; do
  launch "$engine" unlearn "${UNLEARN[@]}" --method NPO --retain_loss nll
  if [ "$engine" = zero3 ]; then
    if launch "$engine" continual-ewc "${CONTINUAL[@]}" --strategy replay,ewc; then
      echo "FAIL: replay,ewc was not refused under ZeRO-3"
    elif grep -q "cannot run under DeepSpeed ZeRO-3" "$OUT/continual-ewc-$engine.log"; then
      echo "ok: replay,ewc refused under ZeRO-3 with a ConfigError"
    else
      echo "FAIL: replay,ewc failed under ZeRO-3 without the ConfigError (see its log)"
    fi
    launch "$engine" continual "${CONTINUAL[@]}" --strategy replay
  else
    launch "$engine" continual "${CONTINUAL[@]}" --strategy replay,ewc
  fi
done

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])


def losses(record):
    """Every ("loss" | "train_loss", value) in a run record, in order (log histories of all stages included)."""
    found = []
    if isinstance(record, dict):
        for key, value in record.items():
            if key in ("loss", "train_loss") and isinstance(value, (int, float)):
                found.append(value)
            else:
                found.extend(losses(value))
    elif isinstance(record, list):
        for value in record:
            found.extend(losses(value))
    return found


print(f"\n{'run':12s} {'ddp':>12s} {'fsdp2':>12s} {'zero3':>12s}   (final logged training loss)")
for name in ("unlearn", "continual"):
    cells = []
    for engine in ("ddp", "fsdp2", "zero3"):
        path = out / f"{name}-{engine}" / "hfcl_run.json"
        values = losses(json.loads(path.read_text())) if path.is_file() else []
        cells.append(f"{values[-1]:12.6f}" if values else f"{'failed':>12s}")
    print(f"{name:12s} {' '.join(cells)}")
print("(continual under zero3 is replay alone: EWC refuses ZeRO-3)")
EOF
