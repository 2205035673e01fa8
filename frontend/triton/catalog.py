"""Discover the ASR ensembles a Triton server serves, from the manifests their configs carry.

Reading the manifest from Triton (rather than from local files) keeps the frontend correct when
it fronts a remote Triton whose repository it never sees.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tritonclient.grpc import aio as grpc_aio

log = logging.getLogger(__name__)

ENSEMBLE_PREFIX = "asr_"


async def ready_ensembles(client: grpc_aio.InferenceServerClient) -> list[str]:
    """Names of the ready models that follow the ensemble naming of docs/triton-contract.md."""
    index = await client.get_model_repository_index(as_json=True)
    return sorted(
        entry["name"]
        for entry in index.get("models", [])
        if entry.get("name", "").startswith(ENSEMBLE_PREFIX) and entry.get("state") == "READY"
    )


async def load_manifests(client: grpc_aio.InferenceServerClient) -> list[dict[str, Any]]:
    """Every served ensemble's manifest, with its `ensemble` name added."""
    manifests = []
    for name in await ready_ensembles(client):
        config = await client.get_model_config(name, as_json=True)
        raw = config.get("config", {}).get("parameters", {}).get("manifest", {}).get("string_value")
        if not raw:
            log.warning("model %s has no manifest parameter; not served", name)
            continue
        manifest = json.loads(raw)
        manifest["ensemble"] = name
        manifests.append(manifest)
    return manifests
