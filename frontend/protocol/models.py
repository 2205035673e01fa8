"""Model, language and latency-profile routing.

Built once at start from the manifests of the served ensembles (the JSON in each ensemble's
`config.pbtxt`, see docs/triton-contract.md, plus the `ensemble` name), then asked per
connection: `ModelTable.resolve(params) -> ModelRoute`, which carries everything the session
needs (ensemble, chunk sizes, vocabulary, Deepgram model identity).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from frontend.protocol.errors import InvalidQuery, UnsupportedLanguage, UnsupportedModel
from frontend.protocol.params import ListenParams

DEEPGRAM_ALIASES = frozenset({
    "nova-3", "nova-3-general", "nova-2", "nova", "general", "base", "enhanced",
    "phonecall", "meeting", "conversationalai",
})
"""Deepgram model names that route to the default model (so do `nova-2-*` and no `model`)."""
_ALIAS_PREFIXES = ("nova-2-",)
_UUID_NAMESPACE = uuid.UUID("6f1d2a3e-9c4b-5e7a-8d0f-1b2c3d4e5f60")


@dataclass(frozen=True)
class ModelRoute:
    """One served ensemble, resolved for one connection."""

    ensemble: str
    model: str
    profile: str
    language: str
    """Primary language subtag matched (`en` for `en-US`)."""
    languages: tuple[str, ...]
    lookahead_ms: int
    display_name: str
    version: str
    uuid: str
    arch: str
    sample_rate: int
    chunk_samples: int
    first_chunk_samples: int
    """The `AUDIO` width: the most one request may carry."""
    first_request_samples: int
    """What a segment's first request carries (manifests without it: `first_chunk_samples`)."""
    frame_shift_s: float
    vocabulary: tuple[str, ...]
    blank_id: int
    word_boundary: str
    default: bool
    partial_outputs: bool = False
    """The ensemble returns PARTIAL_* (a decoder's provisional tail) for interim results."""
    keyterms: bool = False
    """The ensemble's decoder boosts keyterms sent as request parameters."""

    def describe(self) -> dict[str, Any]:
        """This ensemble as Deepgram's `GET /v1/models` lists a speech-to-text model.

        `canonical_name` is what `model=` takes; the `ddx_` fields say which latency profile
        it is (`ddx_latency=`) and whether it is the model's default profile.
        """
        return {
            "name": self.display_name, "canonical_name": self.model, "architecture": self.arch,
            "languages": list(self.languages), "version": self.version, "uuid": self.uuid,
            "batch": True, "streaming": True, "formatted_output": True,
            "ddx_latency": self.profile, "ddx_lookahead_ms": self.lookahead_ms, "ddx_default": self.default,
        }


def _require(manifest: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in manifest:
        raise ValueError(f"manifest {manifest.get('ensemble') or manifest.get('model')!r} "
                         f"lacks {key!r}")
    value = manifest[key]
    # bool is an int subclass: `true` as a chunk size is a broken manifest, not 1.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"manifest key {key!r} has {type(value).__name__}, expected {kind}")
    return value


def primary_subtag(language: str) -> str:
    """`en-US` / `en_us` / `EN` -> `en`."""
    return language.replace("_", "-").split("-", 1)[0].strip().lower()


def route_from_manifest(manifest: Mapping[str, Any]) -> ModelRoute:
    """Check one manifest and turn it into a route (language = its first language).

    Raises ValueError naming the key when the manifest is incomplete or mistyped: a broken
    model repository must stop the server at start, not a client at connect.
    """
    model = _require(manifest, "model", str)
    profile = _require(manifest, "profile", str)
    languages = tuple(primary_subtag(lang) for lang in _require(manifest, "languages", list))
    vocabulary = tuple(_require(manifest, "vocabulary", list))
    route = ModelRoute(
        ensemble=str(manifest.get("ensemble") or f"asr_{model}_{profile}"),
        model=model,
        profile=profile,
        language=languages[0] if languages else "",
        languages=languages,
        lookahead_ms=_require(manifest, "lookahead_ms", int),
        display_name=str(manifest.get("display_name") or f"{model}-{profile}"),
        version=str(manifest.get("version") or "latest"),
        # A stable uuid per ensemble when the manifest has none: clients compare model_uuid.
        uuid=str(manifest.get("uuid") or uuid.uuid5(_UUID_NAMESPACE, f"{model}/{profile}")),
        arch=str(manifest.get("arch") or model),
        sample_rate=int(manifest.get("sample_rate", 16000)),
        chunk_samples=_require(manifest, "chunk_samples", int),
        first_chunk_samples=_require(manifest, "first_chunk_samples", int),
        first_request_samples=int(manifest.get("first_request_samples") or manifest["first_chunk_samples"]),
        frame_shift_s=float(_require(manifest, "frame_shift_s", (int, float))),
        vocabulary=vocabulary,
        blank_id=_require(manifest, "blank_id", int),
        word_boundary=_require(manifest, "word_boundary", str),
        default=bool(manifest.get("default", False)),
        partial_outputs=bool(manifest.get("partial_outputs", False)),
        keyterms=bool(manifest.get("keyterms", False)),
    )
    if not languages:
        raise ValueError(f"manifest {route.ensemble!r} serves no language")
    if route.sample_rate != 16000:
        raise ValueError(f"manifest {route.ensemble!r}: sample_rate {route.sample_rate}, "
                         "the frontend feeds 16 kHz")
    if not 0 < route.chunk_samples <= route.first_chunk_samples:
        raise ValueError(f"manifest {route.ensemble!r}: need 0 < chunk_samples <= "
                         "first_chunk_samples")
    if not 0 < route.first_request_samples <= route.first_chunk_samples:
        raise ValueError(f"manifest {route.ensemble!r}: need 0 < first_request_samples <= "
                         "first_chunk_samples")
    if route.frame_shift_s <= 0 or not route.word_boundary:
        raise ValueError(f"manifest {route.ensemble!r}: frame_shift_s and word_boundary "
                         "must be set")
    if not all(isinstance(piece, str) for piece in vocabulary):
        raise ValueError(f"manifest {route.ensemble!r}: vocabulary must be strings")
    return route


class ModelTable:
    """The served (model, profile) ensembles and the routing rules of `resolve`."""

    def __init__(self, manifests: Iterable[Mapping[str, Any]], *,
                 default_model: str | None = None) -> None:
        """Index the manifests; raise ValueError when they are inconsistent.

        The default model (target of `nova-*`, `general`, ... and of no `model`) is
        `default_model` when given, else the model of the first manifest marked `default`,
        else the model of the first manifest.
        """
        self._routes: dict[str, list[ModelRoute]] = {}
        for manifest in manifests:
            route = route_from_manifest(manifest)
            profiles = self._routes.setdefault(route.model, [])
            if any(other.profile == route.profile for other in profiles):
                raise ValueError(f"model {route.model!r} profile {route.profile!r} served twice")
            profiles.append(route)
        if not self._routes:
            raise ValueError("no model served")
        for model, profiles in self._routes.items():
            if sum(route.default for route in profiles) > 1:
                raise ValueError(f"model {model!r} has more than one default profile")
            profiles.sort(key=lambda route: route.lookahead_ms)
        if default_model is None:
            flagged = [r.model for routes in self._routes.values() for r in routes if r.default]
            default_model = flagged[0] if flagged else next(iter(self._routes))
        if default_model not in self._routes:
            raise ValueError(f"default model {default_model!r} is not served")
        self.default_model = default_model

    @property
    def routes(self) -> tuple[ModelRoute, ...]:
        """Every served ensemble, by model then look-ahead."""
        return tuple(route for routes in self._routes.values() for route in routes)

    @property
    def ensembles(self) -> tuple[str, ...]:
        """The names of every served ensemble (what /healthz waits for)."""
        return tuple(route.ensemble for route in self.routes)

    def resolve(self, params: ListenParams) -> ModelRoute:
        """Pick the ensemble for a connection.

        Model: an exact served model id routes to itself; a Deepgram alias (see
        `DEEPGRAM_ALIASES`, `nova-2-*`) or no `model` routes to the default model, or, when
        that one does not serve the language, to the first served model that does; anything
        else raises `UnsupportedModel`. Language: matched on the primary subtag, case-
        insensitively (`en-US` -> `en`); `multi` only when a manifest lists it; else
        `UnsupportedLanguage`. Profile: see `ListenParams` (`ddx_latency`, `no_delay`, else
        the manifest marked `default`, else the largest look-ahead). A `la<N>` that is not
        served raises `InvalidQuery`.
        """
        language = primary_subtag(params.language)
        name = (params.model or "").lower()
        if name in self._routes:
            model = name
        elif not name or name in DEEPGRAM_ALIASES or name.startswith(_ALIAS_PREFIXES):
            model = self._model_for_alias(language)
        else:
            raise UnsupportedModel(f"model={params.model!r}; served: "
                                   f"{', '.join(self._routes)} or a Deepgram alias (nova-3, ...)")
        candidates = [route for route in self._routes[model] if language in route.languages]
        if not candidates:
            served = sorted({lang for route in self._routes[model] for lang in route.languages})
            raise UnsupportedLanguage(f"language={params.language!r}; model {model!r} serves "
                                      f"{', '.join(served)}")
        return replace(self._pick_profile(candidates, params), language=language)

    def _model_for_alias(self, language: str) -> str:
        if any(language in route.languages for route in self._routes[self.default_model]):
            return self.default_model
        for model, routes in self._routes.items():
            if any(language in route.languages for route in routes):
                return model
        return self.default_model  # resolve() then reports the unsupported language

    @staticmethod
    def _pick_profile(candidates: Sequence[ModelRoute], params: ListenParams) -> ModelRoute:
        # candidates are sorted by look-ahead
        selector = params.ddx_latency
        if selector is None and params.no_delay:
            selector = "low"
        if selector == "low":
            return candidates[0]
        if selector == "accurate":
            return candidates[-1]
        if selector == "balanced":
            return candidates[(len(candidates) - 1) // 2]
        if selector is not None:
            for route in candidates:
                if route.profile == selector:
                    return route
            raise InvalidQuery(f"ddx_latency={selector!r}; served: "
                               f"{', '.join(route.profile for route in candidates)}")
        for route in candidates:
            if route.default:
                return route
        return candidates[-1]
