#!/usr/bin/env python3
"""Evaluation sets, utterance selection, reports and the streaming-vs-offline comparison.

Shared by `eval_service.py` (streaming, through the running service; plain `.venv`) and
`eval_offline.py` (NeMo forward pass; `.venv-nemo`), so both pick the *same* utterances for a
given `--set`/`--limit` and write reports of the same shape. Standard library only.

    python scripts/eval_common.py compare STREAMING.json OFFLINE.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wer import Scores, edit_distance, normalize, read_manifest, score  # noqa: E402

DEFAULT_CORPUS = Path("/work/runs/corpus")


@dataclass(frozen=True)
class EvalSet:
    """One evaluation manifest, the figure the issue sets a target on, and how to break it down."""

    name: str
    manifest: str
    description: str
    metric: str  # "wer" (at most `target`) or "exact" (at least `target`)
    target: float
    group_by: str  # "voice" (full voice name) or "family" (part before the "/")

    def met(self, s: Scores) -> bool:
        return s.wer <= self.target if self.metric == "wer" else s.exact >= self.target

    @property
    def target_text(self) -> str:
        return f"WER <= {100 * self.target:g}%" if self.metric == "wer" else f"exact >= {100 * self.target:g}%"


SETS: dict[str, EvalSet] = {
    s.name: s
    for s in (
        EvalSet("festival16k", "eval_festival16k.jsonl",
                "held-out sentences, Festival voices (evaluation-only), 16 kHz linear16", "wer", 0.20, "voice"),
        EvalSet("festival8k_mulaw", "eval_festival8k_mulaw.jsonl",
                "held-out sentences, Festival voices (evaluation-only), 8 kHz mu-law", "wer", 0.25, "voice"),
        EvalSet("tts", "eval_tts.jsonl",
                "held-out sentences, training TTS voices (espeak/flite)", "wer", 0.10, "family"),
        EvalSet("tts_voices", "eval_tts_voices.jsonl",
                "held-out sentences, held-out espeak-ng voice variants", "wer", 0.10, "family"),
        EvalSet("fsdd", "eval_fsdd.jsonl",
                "FSDD real human digits (nicolas, theo), 8 kHz linear16", "exact", 0.95, "voice"),
        # Held to the same targets as their single sentences: a live stream is what users send.
        EvalSet("tts_stream", "eval_tts_stream.jsonl",
                "pairs of held-out sentences in one stream, a 0.4-2 s pause before each, training TTS voices",
                "wer", 0.10, "family"),
        EvalSet("festival16k_stream", "eval_festival16k_stream.jsonl",
                "pairs of held-out sentences in one stream, a 0.4-2 s pause before each, Festival voices, 16 kHz",
                "wer", 0.20, "voice"),
    )
}


SET_CHOICES = " | ".join([*SETS, "all"])
"""For ``--set`` help texts."""


def resolve_sets(names: list[str]) -> list[EvalSet]:
    """`all` or set names (repeatable / comma separated) -> EvalSets, in the order given."""
    out: list[EvalSet] = []
    for raw in names:
        for name in filter(None, (n.strip() for n in raw.split(","))):
            if name == "all":
                out.extend(s for s in SETS.values() if s not in out)
            elif name in SETS:
                if SETS[name] not in out:
                    out.append(SETS[name])
            else:
                raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)} or all")
    return out


def select_rows(rows: list[dict], limit: int | None) -> list[tuple[int, dict]]:
    """`limit` rows spread evenly over the manifest (with their manifest index), or all rows.

    Manifests are often sorted (FSDD: by digit, then speaker), so the first N rows would be one
    digit of one speaker; evenly spaced rows cover every digit and speaker. Deterministic, so the
    streaming and offline evaluations see the same utterances.
    """
    if not limit or limit >= len(rows):
        return list(enumerate(rows))
    return [(i * len(rows) // limit, rows[i * len(rows) // limit]) for i in range(limit)]


def load_set(es: EvalSet, corpus: Path, limit: int | None) -> list[tuple[int, dict]]:
    return select_rows(read_manifest(corpus / es.manifest), limit)


def group_key(es: EvalSet, row: dict) -> str:
    voice = str(row.get("voice", "?"))
    return voice.split("/", 1)[0] if es.group_by == "family" else voice


def utterance_record(index: int, row: dict, hyp: str, **extra: Any) -> dict[str, Any]:
    """Per-utterance line of a report: reference, hypothesis, their normalised forms, errors."""
    ref_n, hyp_n = normalize(row["text"]), normalize(hyp)
    return {
        "index": index,
        "audio_filepath": row["audio_filepath"],
        "voice": row.get("voice"),
        "duration": row.get("duration"),
        "ref": row["text"],
        "hyp": hyp,
        "ref_norm": ref_n,
        "hyp_norm": hyp_n,
        "words": len(ref_n.split()),
        "word_errors": edit_distance(ref_n.split(), hyp_n.split()),
        "exact": ref_n == hyp_n,
        **extra,
    }


def summarise(es: EvalSet, utts: list[dict]) -> dict[str, Any]:
    """Scores of the whole set and of each voice / voice family."""
    total = score([u["ref"] for u in utts], [u["hyp"] for u in utts])
    groups: dict[str, list[dict]] = defaultdict(list)
    for u in utts:
        groups[group_key(es, u)].append(u)
    return {
        "description": es.description,
        "manifest": es.manifest,
        "target": {"metric": es.metric, "value": es.target, "text": es.target_text},
        "met": es.met(total),
        "errors": sum(1 for u in utts if u.get("error")),
        **asdict(total),
        "groups": {k: asdict(score([u["ref"] for u in g], [u["hyp"] for u in g])) for k, g in sorted(groups.items())},
    }


def new_report(kind: str, **info: Any) -> dict[str, Any]:
    return {"kind": kind, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **info, "sets": {}}


def add_set(report: dict[str, Any], es: EvalSet, utts: list[dict]) -> None:
    report["sets"][es.name] = {"summary": summarise(es, utts), "utterances": utts}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown_table(report: dict[str, Any]) -> str:
    """Per set (and per voice / family below it): n, WER, CER, exact, the target and whether it is met."""
    lines = [
        "| set | group | n | WER % | CER % | exact % | target | met |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for name, body in report["sets"].items():
        s = body["summary"]
        errs = f" ({s['errors']} failed)" if s.get("errors") else ""
        lines.append(f"| **{name}** | all{errs} | {s['n']} | {_pct(s['wer'])} | {_pct(s['cer'])} | "
                     f"{_pct(s['exact'])} | {s['target']['text']} | {'yes' if s['met'] else '**no**'} |")
        for group, g in s["groups"].items():
            lines.append(f"| | {group} | {g['n']} | {_pct(g['wer'])} | {_pct(g['cer'])} | {_pct(g['exact'])} | | |")
    return "\n".join(lines)


def examples(report: dict[str, Any], per_set: int) -> str:
    out = []
    for name, body in report["sets"].items():
        worst = sorted(body["utterances"], key=lambda u: -u["word_errors"])[:per_set]
        for u in worst:
            out.append(f"[{name} #{u['index']} {u['voice']}] ref: {u['ref_norm']}\n{' ' * (len(name) + 4)}hyp: {u['hyp_norm']}")
    return "\n".join(out)


def write_report(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")


# --------------------------------------------------------------------------- comparison


def compare(streaming: dict[str, Any], offline: dict[str, Any], tolerance_points: float = 1.0) -> tuple[str, bool]:
    """Side-by-side WER of the same utterances; ok when every set is within `tolerance_points`."""
    lines = [
        "| set | n | streaming WER % | offline WER % | diff (points) | within "
        f"{tolerance_points:g} pt | streaming CER % | offline CER % | utterances that differ |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    ok = True
    pooled_s: list[dict] = []
    pooled_o: list[dict] = []
    for name, body in streaming["sets"].items():
        if name not in offline["sets"]:
            lines.append(f"| {name} | | | (missing) | | | | | |")
            ok = False
            continue
        su, ou = body["utterances"], offline["sets"][name]["utterances"]
        if [u["audio_filepath"] for u in su] != [u["audio_filepath"] for u in ou]:
            raise SystemExit(f"{name}: the two reports scored different utterances")
        pooled_s += su
        pooled_o += ou
        lines.append(_compare_row(name, su, ou, tolerance_points))
        ok &= abs(_wer(su) - _wer(ou)) * 100 <= tolerance_points
    if len(streaming["sets"]) > 1:
        lines.append(_compare_row("**pooled**", pooled_s, pooled_o, tolerance_points))
    if pooled_o and _wer(pooled_o) > 0.9:
        lines.append("\nNote: offline WER is above 90 %: agreement within the tolerance says little about the "
                     "serving path until the model transcribes; watch the last column (hypotheses that differ).")
    return "\n".join(lines), ok


def _wer(utts: list[dict]) -> float:
    return score([u["ref"] for u in utts], [u["hyp"] for u in utts]).wer


def _compare_row(name: str, su: list[dict], ou: list[dict], tol: float) -> str:
    s = score([u["ref"] for u in su], [u["hyp"] for u in su])
    o = score([u["ref"] for u in ou], [u["hyp"] for u in ou])
    diff = 100 * (s.wer - o.wer)
    differ = sum(a["hyp_norm"] != b["hyp_norm"] for a, b in zip(su, ou))
    return (f"| {name} | {s.n} | {_pct(s.wer)} | {_pct(o.wer)} | {diff:+.1f} | "
            f"{'yes' if abs(diff) <= tol else '**no**'} | {_pct(s.cer)} | {_pct(o.cer)} | {differ} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="streaming vs offline WER of the same utterances")
    c.add_argument("streaming", type=Path)
    c.add_argument("offline", type=Path)
    c.add_argument("--tolerance", type=float, default=1.0, help="allowed |streaming - offline| in WER points")
    c.add_argument("--show", type=int, default=3, help="utterances per set where the two differ most")
    t = sub.add_parser("table", help="markdown table of a report")
    t.add_argument("report", type=Path)
    args = ap.parse_args()

    if args.command == "table":
        print(markdown_table(json.loads(args.report.read_text())))
        return
    streaming = json.loads(args.streaming.read_text())
    offline = json.loads(args.offline.read_text())
    table, ok = compare(streaming, offline, args.tolerance)
    print(f"streaming: {streaming.get('source')} ({streaming.get('latency') or 'default profile'})")
    print(f"offline:   {offline.get('source')} ({offline.get('latency') or 'default att_context'})\n")
    print(table)
    if args.show:
        print()
        for name, body in streaming["sets"].items():
            if name not in offline["sets"]:
                continue
            pairs = zip(body["utterances"], offline["sets"][name]["utterances"])
            worst = sorted(pairs, key=lambda p: -abs(p[0]["word_errors"] - p[1]["word_errors"]))[: args.show]
            for su, ou in worst:
                if su["hyp_norm"] == ou["hyp_norm"]:
                    continue
                print(f"[{name} #{su['index']}] ref:       {su['ref_norm']}\n"
                      f"{' ' * (len(name) + 4 + len(str(su['index'])))}streaming: {su['hyp_norm']}\n"
                      f"{' ' * (len(name) + 4 + len(str(su['index'])))}offline:   {ou['hyp_norm']}")
    print(f"\nstreaming within {args.tolerance:g} WER point of offline on every set: {'yes' if ok else 'NO'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
