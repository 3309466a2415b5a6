"""The GPU check in one command, for when a GPU machine is lent (issue 15).

    .venv/bin/python bench/gpu_bench.py [--copies 20] [--out gpu-bench.json] [--device cuda]

1. The device: name, memory, compute capability, torch and CUDA versions.
2. Per-stage images/s on the device at batch 1, 8 and 32 (`bench.pipeline_bench.bench_stages`, the
   stages built as a GPU worker builds them: fp16 where a stage uses it), on CCP photos and on
   1-fps frames of the shared video.
3. End to end: `vestis ingest --gpu require` (one worker per GPU, as `pipelines.cluster` starts
   it) of the shared videos, each in `--copies` byte-different copies (a stream copy with another
   metadata comment: the same frames, another fingerprint, so none is skipped as already done),
   through `bench/ingest_bench.py`: video-seconds per wall-second, decode included, CPU seconds
   per video-second and peak worker memory.

Prints a markdown summary; the JSON report goes to --out. Without CUDA it says so and exits 2;
`--device cpu --copies 1` runs the same steps on the CPU as a smoke check. Benchmarks never
assert on speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest_bench  # noqa: E402
from bench.pipeline_bench import bench_stages, load_photos, load_video_frames  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared" / "data"
STAGE_VIDEO = "one-by-one-person-detection.mp4"


def device_facts(device: str) -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        facts.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                     capability=f"{props.major}.{props.minor}", count=torch.cuda.device_count())
    return facts


def copies_of(videos: list[Path], copies: int, folder: Path) -> list[Path]:
    """`copies` byte-different copies of each video (stream copy, another metadata comment)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    out = []
    for video in videos:
        for k in range(copies):
            target = folder / f"{video.stem}-copy{k}{video.suffix}"
            subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(video), "-map", "0", "-c", "copy",
                            "-metadata", f"comment=vestis-gpu-bench-{k}", str(target)], check=True)
            out.append(target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--copies", type=int, default=20, help="copies of each shared video to ingest")
    parser.add_argument("--images", type=int, default=64, help="images per stage measurement")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (use --device cpu for a smoke check)")
        return 2
    videos = sorted((args.data / "videos").glob("*.mp4"))
    if not videos:
        print(f"no videos in {args.data / 'videos'}: the benchmark needs the shared data")
        return 2
    report: dict = {"benchmark": "gpu", "device": device_facts(args.device)}
    image_sets = {"ccp_photos": load_photos(args.data / "ccp" / "images", args.images)}
    stage_video = next((v for v in videos if v.name == STAGE_VIDEO), videos[0])
    image_sets[f"video_frames ({stage_video.name})"] = load_video_frames(stage_video, args.images)
    report["stages"] = bench_stages(image_sets, batch_sizes=[1, 8, 32], repeats=3, device=args.device)

    with tempfile.TemporaryDirectory(prefix="vestis-gpu-bench-") as folder:
        inputs = copies_of(videos, args.copies, Path(folder))
        gpu = ["--gpu", "require"] if args.device.startswith("cuda") else ["--gpu", "off"]
        report["end_to_end"] = ingest_bench.run([str(p) for p in inputs], 1,
                                                [*gpu, "--set", f"vision.device={args.device}"])
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(f"device: {report['device']}\n")
    print("| stage | input | batch | images/s | persons/s |\n|---|---|---:|---:|---:|")
    for row in report["stages"]["results"]:
        print(f"| {row['stage']} | {row['input']} | {row['batch_size']} | {row['images_per_s']:.1f} | "
              f"{row.get('persons_per_s', 0):.1f} |")
    print()
    print(ingest_bench.summary_markdown(report["end_to_end"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
