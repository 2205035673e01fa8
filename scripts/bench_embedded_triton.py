"""Measure the embedded Triton: per-model compute per execution, by batch size.

Builds a repository from an exported model folder, starts the real ``tritonserver``, streams
``--streams`` concurrent sequences of ``--seconds`` of noise-like audio through one profile,
and prints Triton's own statistics (``compute_infer`` per batch size) for the features,
encoder and decoder models plus the client-side request latency.

    .venv/bin/python scripts/bench_embedded_triton.py --profile la13 --streams 1
    .venv/bin/python scripts/bench_embedded_triton.py --profile la13 --streams 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import aio as grpc_aio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from frontend.triton.server import EmbeddedTriton  # noqa: E402
from scripts.build_model_repository import build_repository  # noqa: E402


def _request(model: str, sid: int, width: int, audio: np.ndarray, start: bool, end: bool, rid: int) -> dict:
    padded = np.zeros((1, width), np.float32)
    padded[0, : len(audio)] = audio
    inputs = [
        grpcclient.InferInput("AUDIO", [1, width], "FP32"),
        grpcclient.InferInput("AUDIO_LEN", [1, 1], "INT32"),
        grpcclient.InferInput("FLUSH", [1, 1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(padded)
    inputs[1].set_data_from_numpy(np.array([[len(audio)]], np.int32))
    inputs[2].set_data_from_numpy(np.array([[0]], np.int32))
    return dict(
        model_name=model, inputs=inputs, request_id=str(rid), sequence_id=sid, sequence_start=start, sequence_end=end
    )


async def _one_stream(url: str, model: str, sid: int, manifest: dict, seconds: float, realtime: bool) -> list[float]:
    """Stream one sequence; returns per-request latencies (s)."""
    rng = np.random.default_rng(sid)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    first, size = manifest["first_chunk_samples"], manifest["chunk_samples"]
    pieces = [audio[:first]] + [audio[i : i + size] for i in range(first, len(audio), size)]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    client = grpc_aio.InferenceServerClient(url)

    async def requests():  # type: ignore[no-untyped-def]
        for i, piece in enumerate(pieces):
            if realtime and i:
                await asyncio.sleep(size / 16000)
            sent[str(i)] = time.perf_counter()
            yield _request(model, sid, first, piece, i == 0, i == len(pieces) - 1, i)

    try:
        async for result, error in client.stream_infer(requests()):
            if error is not None:
                raise error
            rid = result.get_response().id
            latencies.append(time.perf_counter() - sent[rid])
            if len(latencies) == len(pieces):
                break
    finally:
        await client.close()
    return latencies


def _batch_table(stats: dict) -> dict[int, tuple[int, float]]:
    """batch size -> (executions, mean compute_infer ms)."""
    out = {}
    for b in stats.get("batch_stats", []):
        ci = b["compute_infer"]
        n = int(ci.get("count", 0))
        if n:
            out[int(b["batch_size"])] = (n, int(ci.get("ns", 0)) / n / 1e6)
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "embedded")
    ap.add_argument("--profile", default="la13")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--encoder-threads", type=int, default=1)
    ap.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--realtime", action="store_true", help="pace requests at real time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        names = build_repository(
            "embedded",
            [args.model],
            Path(tmp) / "repo",
            profiles=[args.profile],
            encoder_threads=args.encoder_threads,
            precision=args.precision,
        )
        async with EmbeddedTriton(Path(tmp) / "repo", models=names) as triton:
            client = grpc_aio.InferenceServerClient(triton.grpc_url)
            cfg = await client.get_model_config(names[0], as_json=True)
            manifest = json.loads(cfg["config"]["parameters"]["manifest"]["string_value"])
            t0 = time.perf_counter()
            runs = await asyncio.gather(
                *(
                    _one_stream(triton.grpc_url, names[0], 1 + i, manifest, args.seconds, args.realtime)
                    for i in range(args.streams)
                )
            )
            wall = time.perf_counter() - t0
            lat = sorted(x for r in runs for x in r)
            report = {
                "profile": args.profile,
                "streams": args.streams,
                "audio_s_per_stream": args.seconds,
                "wall_s": round(wall, 3),
                "x_realtime": round(args.streams * args.seconds / wall, 1),
                "request_latency_ms": {
                    "p50": round(1e3 * statistics.median(lat), 2),
                    "p90": round(1e3 * lat[int(0.9 * (len(lat) - 1))], 2),
                    "max": round(1e3 * lat[-1], 2),
                },
            }
            for role in ("features", "encoder", "decoder"):
                stats = await client.get_inference_statistics(f"embedded_{args.profile}_{role}", as_json=True)
                table = _batch_table(stats["model_stats"][0])
                report[f"{role}_compute_ms_by_batch"] = {b: round(ms, 2) for b, (_, ms) in sorted(table.items())}
                report[f"{role}_executions_by_batch"] = {b: n for b, (n, _) in sorted(table.items())}
            await client.close()
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
