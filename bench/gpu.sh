#!/usr/bin/env bash
# The GPU measurements of issue 12 (item 5) in one run of at most 8 minutes, written to one JSON file:
#   1. training throughput, our device loader + engine step against torchvision's DataLoader + PIL,
#      for resdw, cnn2, cnn6 and cnn7 at batch 256 (bench/train_throughput.py, 3 interleaved repeats);
#   2. two epochs of cnn7 on 50,000 images, projected to report A's 100;
#   3. 1,000 DCGAN steps, projected to report B's 46,000;
#   4. FID of 10,000 generated images (`cifar fid`), which needs pytorch-fid's Inception weights:
#      set CIFAR_FID_WEIGHTS to the .pth file; without it this part is skipped, and the JSON says so.
#
#   bench/gpu.sh [--tiny] [OUT.json]        (default OUT: bench-gpu.json)
#
# --tiny runs every part with tiny sizes on whatever device there is (this checks the script on a
# CPU machine; its numbers mean nothing). Data: $CIFAR_DATA_DIR when it holds CIFAR-100, else a
# synthetic set of the same size (said in the JSON). Each part has its own time limit (together
# 465 s), so one slow part cannot take the others' time; a part that fails or runs out is
# recorded, not fatal.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
TINY=0
if [ "${1:-}" = "--tiny" ]; then TINY=1; shift; fi
OUT=${1:-bench-gpu.json}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-gpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CIFAR=("$PY" -m jobs.cli)

if [ "$TINY" = 1 ]; then
  # Inception at 299x299 dominates on a CPU (~0.15 s an image): 4 fake and 8 test images keep it short.
  MODELS=tinycnn; BATCH=32; TP_STEPS=3; WARMUP=1; TRAIN_N=400; TEST_N=8
  CNN7=tinycnn; GAN_STEPS=20; GAN_ARGS="--batch-size 16 --ngf 8 --ndf 8 --nz 16"; FID_N=4; LIMIT=120
else
  MODELS=resdw,cnn2,cnn6,cnn7; BATCH=256; TP_STEPS=40; WARMUP=5; TRAIN_N=50000; TEST_N=10000
  CNN7=cnn7; GAN_STEPS=1000; GAN_ARGS=""; FID_N=10000; LIMIT=0
fi
limit() { [ "$LIMIT" -gt 0 ] && echo "$LIMIT" || echo "$1"; }  # seconds for a part
status=$WORK/status
: > "$status"
part() {  # part NAME SECONDS COMMAND...: run, time, record the exit status
  local name=$1 seconds=$2; shift 2
  local start end rc=0
  start=$(date +%s.%N)
  timeout "$seconds" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" || rc=$?
  end=$(date +%s.%N)
  echo "$name $rc $start $end" >> "$status"
  [ "$rc" = 0 ] || { echo "bench/gpu.sh: $name ended with status $rc (124: out of time); see below" >&2; tail -5 "$WORK/$name.err" >&2; }
}

DATA=${CIFAR_DATA_DIR:-}
if [ -z "$DATA" ] || [ ! -d "$DATA/cifar-100-python" ] || [ "$TINY" = 1 ]; then
  DATA=$WORK/data
  part data 60 "${CIFAR[@]}" data synth --out "$DATA" --train "$TRAIN_N" --test "$TEST_N"
fi
R=$WORK/results

part throughput "$(limit 180)" "$PY" bench/train_throughput.py --models "$MODELS" --batch-size "$BATCH" \
  --steps "$TP_STEPS" --warmup "$WARMUP" --repeats 3 --workers "$(( $(nproc) > 8 ? 8 : $(nproc) ))" --out "$WORK/throughput.json"
part cnn7 "$(limit 90)" "${CIFAR[@]}" train --model "$CNN7" --optimizer sgd --lr 0.01 --momentum 0.9 --epochs 2 --full-train \
  --run-name cnn7-2ep --data-dir "$DATA" --results-dir "$R" --json
# Single stages run in this process (--no-ray): Ray's start-up is not what is measured here.
# shellcheck disable=SC2086  # GAN_ARGS is a list of options
part gan "$(limit 60)" "${CIFAR[@]}" gan train --run-name bench --steps "$GAN_STEPS" $GAN_ARGS --log-every 100 \
  --sample-every "$GAN_STEPS" --checkpoint-every "$GAN_STEPS" --data-dir "$DATA" --results-dir "$R" --no-ray
if [ -n "${CIFAR_FID_WEIGHTS:-}" ] && [ -f "${CIFAR_FID_WEIGHTS}" ]; then
  part fid "$(limit 75)" "${CIFAR[@]}" fid --checkpoint "$R/gan/bench/checkpoints/last.pt" --n "$FID_N" \
    --weights "$CIFAR_FID_WEIGHTS" --data-dir "$DATA" --results-dir "$R" --out "$WORK/fid" --json --no-ray \
    --allow-synthetic  # a speed measurement: its score is set beside nothing
fi

"$PY" - "$WORK" "$R" "$DATA" "$OUT" "$TINY" <<'EOF'
import json, os, platform, sys
from pathlib import Path

work, results, data, out, tiny = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
import torch

def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None

parts = {}
for line in (work / "status").read_text().splitlines():
    name, rc, start, end = line.split()
    parts[name] = {"exit_status": int(rc), "wall_s": round(float(end) - float(start), 2)}
gpu = torch.cuda.is_available()
report = {
    "benchmark": "bench/gpu.sh",
    "tiny": tiny,
    "device": torch.cuda.get_device_name(0) if gpu else f"cpu ({platform.processor() or platform.machine()})",
    "torch": torch.__version__,
    "cpu_cores": os.cpu_count(),
    "data": {"root": data, "synthetic": (Path(data) / "cifar-100-python" / "SYNTHETIC.json").is_file()},
    "parts": parts,
    "notes": [],
}
report["throughput"] = load(work / "throughput.json")
train = load(results / "train" / "cnn7-2ep" / "summary.json")
if train:
    history = [json.loads(l) for l in (results / "train" / "cnn7-2ep" / "metrics.jsonl").read_text().splitlines()]
    steady = history[-1]["epoch_time_s"]  # the first epoch also pays for start-up
    report["cnn7_two_epochs"] = {
        "model": train["model"], "epoch_time_s": [round(h["epoch_time_s"], 2) for h in history],
        "steps_per_epoch": history[0]["step"],
        "projected_100_epochs_min": round(steady * 100 / 60, 1),
    }
gan = load(results / "gan" / "bench" / "summary.json")
if gan:
    report["gan"] = {"steps": gan["steps"], "steps_per_s": gan["steps_per_s"], "wall_time_s": gan["wall_time_s"],
                     "projected_46000_steps_min": round(46000 / gan["steps_per_s"] / 60, 1) if gan["steps_per_s"] else None}
fid = load(work / "fid" / "summary.json")
if fid:
    report["fid"] = {"n": fid.get("n_fake"), "fid": fid.get("fid"), "wall_s": parts["fid"]["wall_s"],
                     "seconds": fid.get("seconds"), "weights_standard": fid.get("weights_standard")}
elif "fid" not in parts:
    report["notes"].append("FID skipped: set CIFAR_FID_WEIGHTS to pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
for name, part in parts.items():
    if part["exit_status"]:
        report["notes"].append(f"{name} failed with exit status {part['exit_status']} (124 = out of time)")
Path(out).write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
EOF
