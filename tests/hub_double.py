"""A protocol-level test double of the Hugging Face Hub HTTP API (stdlib only).

It answers the routes that ``huggingface_hub`` 2.x calls for ``create_repo``, ``create_branch``,
``upload_folder`` (preupload + NDJSON commit, every file as a "regular" base64 blob: no LFS/xet
needed), ``repo_info``, ``file_exists``, ``paths_info``, ``list_repo_tree`` and ``hf_hub_download``
(``HEAD``/``GET .../resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` and ``X-Error-Code``
on 404s), which is what timm's ``hf-hub:`` loading uses. Blobs are stored by sha256 under
``root``; repos, branches and commits live in memory. Writes need an ``Authorization`` header.

Run by hand:  ``python tests/hub_double.py --root DIR [--port 8765]`` (prints its URL).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlparse

_REPO = r'(?P<repo>[\w.-]+/[\w.-]+)'
_REV = r'(?P<rev>[^/]+)'


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()


class HubState:
    """Repos (branches -> commit, commits -> {path: (sha256, size, git sha1)}) and a blob store."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / 'blobs').mkdir(parents=True, exist_ok=True)
        self.repos: Dict[str, Dict[str, Any]] = {}
        self.lock = threading.Lock()

    def put_blob(self, data: bytes) -> Tuple[str, int, str]:
        sha = hashlib.sha256(data).hexdigest()
        (self.root / 'blobs' / sha).write_bytes(data)
        return sha, len(data), git_sha1(data)

    def blob(self, sha: str) -> bytes:
        return (self.root / 'blobs' / sha).read_bytes()

    def commit(self, repo: str, branch: str, files: Dict[str, Any], message: str) -> str:
        r = self.repos[repo]
        parent = r['branches'].get(branch)
        sha = hashlib.sha1(f'{repo}{branch}{parent}{time.time_ns()}{message}'.encode()).hexdigest()
        r['commits'][sha] = {'files': files, 'message': message, 'date': time.strftime('%Y-%m-%dT%H:%M:%S.000Z')}
        r['branches'][branch] = sha
        return sha

    def resolve(self, repo: str, rev: str) -> Optional[str]:
        r = self.repos[repo]
        rev = unquote(rev)
        if rev in r['branches']:
            return r['branches'][rev]
        return rev if rev in r['commits'] else None


class HubHandler(BaseHTTPRequestHandler):
    state: HubState  # set on the subclass made by :func:`make_server`
    protocol_version = 'HTTP/1.1'

    # ---------------------------------------------------------------- plumbing
    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def _base(self) -> str:
        return f'http://{self.headers.get("Host")}'

    def _send(self, code: int, body: Any = None, headers: Optional[Dict[str, str]] = None,
              raw: Optional[bytes] = None, head: bool = False) -> None:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b'')
        self.send_response(code)
        if raw is None:
            self.send_header('Content-Type', 'application/json')
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, code: int, error_code: str, message: str, head: bool = False) -> None:
        self._send(code, {'error': message}, {'X-Error-Code': error_code, 'X-Error-Message': message}, head=head)

    def _body(self) -> bytes:
        return self.body

    def _authorized(self) -> bool:
        if self.headers.get('Authorization', '').startswith('Bearer '):
            return True
        self._error(401, 'Unauthorized', 'Invalid credentials in Authorization header')
        return False

    def _repo(self, repo: str, head: bool = False) -> Optional[Dict[str, Any]]:
        if repo not in self.state.repos:
            self._error(404, 'RepoNotFound', f'Repository not found: {repo}', head=head)
            return None
        return self.state.repos[repo]

    def _dispatch(self, method: str, routes: List[Tuple[str, Any]]) -> None:
        path = urlparse(self.path).path
        # read the whole request body first: keep-alive connections must not see leftovers
        self.body = self.rfile.read(int(self.headers.get('Content-Length') or 0)) if method == 'POST' else b''
        for pattern, fn in routes:
            m = re.fullmatch(pattern, path)
            if m:
                with self.state.lock:
                    return fn(**m.groupdict())
        self._error(404, 'NotFound', f'{method} {path}: route not implemented by the test double')

    # ---------------------------------------------------------------- verbs
    def do_POST(self) -> None:
        self._dispatch('POST', [
            (r'/api/repos/create', self.create_repo),
            (r'/api/validate-yaml', lambda: self._send(200, {'errors': [], 'warnings': []})),
            (rf'/api/models/{_REPO}/preupload/{_REV}', self.preupload),
            (rf'/api/models/{_REPO}/commit/{_REV}', self.commit),
            (rf'/api/models/{_REPO}/branch/{_REV}', self.create_branch),
            (rf'/api/models/{_REPO}/paths-info/{_REV}', self.paths_info),
        ])

    def do_GET(self) -> None:
        self._dispatch('GET', [
            (rf'/api/models/{_REPO}', self.repo_info),
            (rf'/api/models/{_REPO}/revision/{_REV}', self.repo_info),
            (rf'/api/models/{_REPO}/tree/{_REV}(?:/(?P<sub>.+))?', self.tree),
            (rf'/{_REPO}/resolve/{_REV}/(?P<file>.+)', self.resolve),
        ])

    def do_HEAD(self) -> None:
        self._dispatch('HEAD', [(rf'/{_REPO}/resolve/{_REV}/(?P<file>.+)', lambda **kw: self.resolve(head=True, **kw))])

    # ---------------------------------------------------------------- routes
    def create_repo(self) -> None:
        if not self._authorized():
            return
        body = json.loads(self._body() or b'{}')
        repo = f'{body.get("organization") or "user"}/{body["name"]}'
        url = f'{self._base()}/{repo}'
        if repo in self.state.repos:
            return self._send(409, {'error': 'You already created this model repo', 'url': url})
        private = body.get('visibility') == 'private' or bool(body.get('private'))
        self.state.repos[repo] = {'private': private, 'branches': {}, 'commits': {}}
        gitattributes = self.state.put_blob(b'*.safetensors filter=lfs diff=lfs merge=lfs -text\n')
        self.state.commit(repo, 'main', {'.gitattributes': gitattributes}, 'initial commit')
        self._send(200, {'url': url, 'name': repo})

    def create_branch(self, repo: str, rev: str) -> None:
        if not self._authorized() or self._repo(repo) is None:
            return
        r, branch = self.state.repos[repo], unquote(rev)
        if branch in r['branches']:
            return self._error(409, 'Conflict', f'Reference already exists: refs/heads/{branch}')
        body = json.loads(self._body() or b'{}')
        start = self.state.resolve(repo, body.get('startingPoint') or 'main')
        r['branches'][branch] = start
        self._send(200, {})

    def preupload(self, repo: str, rev: str) -> None:
        if not self._authorized() or self._repo(repo) is None:
            return
        commit = self.state.resolve(repo, rev)
        files = self.state.repos[repo]['commits'][commit]['files'] if commit else {}
        body = json.loads(self._body())
        self._send(200, {'files': [
            {'path': f['path'], 'uploadMode': 'regular', 'shouldIgnore': False,
             'oid': files[f['path']][2] if f['path'] in files else None} for f in body['files']]})

    def commit(self, repo: str, rev: str) -> None:
        if not self._authorized() or self._repo(repo) is None:
            return
        branch = unquote(rev)
        parent = self.state.repos[repo]['branches'].get(branch)
        if parent is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {branch}')
        files = dict(self.state.repos[repo]['commits'][parent]['files'])
        message = ''
        for line in self._body().splitlines():
            item = json.loads(line)
            key, value = item['key'], item['value']
            if key == 'header':
                message = value['summary']
            elif key == 'file':
                files[value['path']] = self.state.put_blob(base64.b64decode(value['content']))
            elif key == 'deletedFile':
                files.pop(value['path'], None)
            elif key == 'deletedFolder':
                files = {p: f for p, f in files.items() if not p.startswith(value['path'].rstrip('/') + '/')}
            else:
                return self._error(422, 'BadRequest', f'commit operation {key!r} not supported by the test double')
        sha = self.state.commit(repo, branch, files, message)
        self._send(200, {'success': True, 'commitOid': sha, 'commitUrl': f'{self._base()}/{repo}/commit/{sha}'})

    def _entry(self, path: str, info: Tuple[str, int, str]) -> Dict[str, Any]:
        sha, size, oid = info
        return {'type': 'file', 'path': path, 'size': size, 'oid': oid}

    def repo_info(self, repo: str, rev: str = 'main') -> None:
        if self._repo(repo) is None:
            return
        commit = self.state.resolve(repo, rev)
        if commit is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {rev}')
        r = self.state.repos[repo]
        files = r['commits'][commit]['files']
        self._send(200, {'id': repo, 'modelId': repo, 'sha': commit, 'private': r['private'],
                         'lastModified': r['commits'][commit]['date'], 'tags': [], 'library_name': 'timm',
                         'siblings': [{'rfilename': p, 'size': f[1], 'blobId': f[2]}
                                      for p, f in sorted(files.items())]})

    def paths_info(self, repo: str, rev: str) -> None:
        if self._repo(repo) is None:
            return
        commit = self.state.resolve(repo, rev)
        if commit is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {rev}')
        files = self.state.repos[repo]['commits'][commit]['files']
        form = parse_qs(self._body().decode())
        self._send(200, [self._entry(p, files[p]) for p in form.get('paths', []) if p in files])

    def tree(self, repo: str, rev: str, sub: Optional[str] = None) -> None:
        if self._repo(repo) is None:
            return
        commit = self.state.resolve(repo, rev)
        if commit is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {rev}')
        prefix = (unquote(sub).rstrip('/') + '/') if sub else ''
        files = self.state.repos[repo]['commits'][commit]['files']
        entries, folders = [], set()
        recursive = parse_qs(urlparse(self.path).query).get('recursive', ['False'])[0].lower() == 'true'
        for p, f in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if '/' in rest and not recursive:
                folders.add(prefix + rest.split('/')[0])
            else:
                entries.append(self._entry(p, f))
        dirs = [{'type': 'directory', 'path': d, 'oid': git_sha1(d.encode())} for d in sorted(folders)]
        self._send(200, dirs + entries)

    def resolve(self, repo: str, rev: str, file: str, head: bool = False) -> None:
        if self._repo(repo, head=head) is None:
            return
        commit = self.state.resolve(repo, rev)
        if commit is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {rev}', head=head)
        files = self.state.repos[repo]['commits'][commit]['files']
        path = unquote(file)
        if path not in files:
            return self._send(404, {'error': 'Entry not found'}, {'X-Error-Code': 'EntryNotFound',
                                                                  'X-Repo-Commit': commit}, head=head)
        sha, size, _ = files[path]
        headers = {'X-Repo-Commit': commit, 'ETag': f'"{sha}"', 'Content-Type': 'application/octet-stream'}
        self._send(200, raw=self.state.blob(sha), headers=headers, head=head)


def make_server(root: Path, host: str = '127.0.0.1', port: int = 0) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0 = any free port) storing blobs under ``root``."""
    handler = type('BoundHubHandler', (HubHandler,), {'state': HubState(root)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


class HubDouble:
    """Context manager: serve in a background thread; ``.url`` is the endpoint to use as HF_ENDPOINT."""

    def __init__(self, root: Path, port: int = 0):
        self.server = make_server(root, port=port)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> 'HubDouble':
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', required=True, type=Path, help='folder for the blobs')
    ap.add_argument('--port', type=int, default=0)
    args = ap.parse_args()
    server = make_server(args.root, port=args.port)
    print(f'hub double at http://127.0.0.1:{server.server_address[1]} (root {args.root})', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()


# ------------------------------------------------------------------------------------------------
# pytest helpers (import them into a test module: `from hub_double import hub, stock_timm_logits`)
# ------------------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # running as a script without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def hub(tmp_path, monkeypatch):
        """A running Hub double; this process talks to it (online mode, a dummy write token)."""
        import huggingface_hub.constants as constants
        monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
        monkeypatch.setenv('HF_TOKEN', 'hf_test_token')
        with HubDouble(tmp_path / 'hub-storage') as double:
            yield double


STOCK_TIMM = r'''
import sys, torch
sys.modules['hrnet_zoo'] = None  # any import of hrnet_zoo fails: stock timm only
import timm
x = torch.load(sys.argv[1])
out = {}
for name in sys.argv[3:]:
    model = timm.create_model(name, pretrained=True).eval()
    assert type(model).__module__ == 'timm.models.hrnet', type(model)
    with torch.no_grad():
        out[name] = model(x)
torch.save(out, sys.argv[2])
'''


def stock_timm_logits(names: List[str], x, tmp: Path, env: Dict[str, str]) -> Dict[str, Any]:
    """Logits of ``x`` from ``timm.create_model(name, pretrained=True)`` for each name, computed in a
    subprocess (``python -I``) where importing hrnet_zoo is impossible."""
    import os
    import subprocess
    import sys
    import torch
    torch.save(x, tmp / 'x.pt')
    full_env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    full_env.update(env, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-I', '-c', STOCK_TIMM, str(tmp / 'x.pt'), str(tmp / 'out.pt'), *names],
                          env=full_env, capture_output=True, text=True, cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(tmp / 'out.pt')


if pytest is not None:
    @pytest.fixture(scope='module')
    def hub_module(tmp_path_factory):
        """A Hub double shared by a test module (online mode, a dummy write token meanwhile)."""
        import huggingface_hub.constants as constants
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, 'HF_HUB_OFFLINE', False)
            mp.setenv('HF_TOKEN', 'hf_test_token')
            with HubDouble(tmp_path_factory.mktemp('hub-storage')) as double:
                yield double
