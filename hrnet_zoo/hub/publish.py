"""Publish a converted folder to the Hugging Face Hub: :func:`publish` (verify, then
``create_repo`` + ``upload_folder``); :func:`publish_plan` lists what would be uploaded."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

from ..checkpoint import WeightsError
from .records import sha256_file
from .verify import verify

__all__ = ['publish', 'publish_plan']


def publish_plan(folder: os.PathLike) -> List[Tuple[str, int, str]]:
    """What :func:`publish` would upload: ``(path in repo, bytes, sha256)`` per file."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob('*')
                   if p.is_file() and not any(s.startswith('.') for s in p.relative_to(folder).parts))
    return [(p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p)) for p in files]


def publish(folder: os.PathLike, repo_id: str, endpoint: Optional[str] = None, revision: Optional[str] = None,
            private: bool = False, token: Optional[str] = None, commit_message: Optional[str] = None):
    """Verify ``folder``, then create ``repo_id`` (if needed) and upload the folder with
    huggingface_hub. The token comes from the usual places (``HF_TOKEN``, ``hf auth login``)."""
    from huggingface_hub import HfApi
    report = verify(folder)
    if not report.ok:
        raise WeightsError(f'{folder} failed verification:\n  ' + '\n  '.join(report.problems))
    api = HfApi(endpoint=endpoint, token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(url.repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(repo_id=url.repo_id, folder_path=str(folder), revision=revision,
                             commit_message=commit_message or f'Add {Path(folder).name} (hrnet-zoo convert)')
