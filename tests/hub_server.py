"""An in-process fake of the Hugging Face Hub, good enough for the real ``huggingface_hub`` client to push and pull.

It speaks the endpoints that ``huggingface_hub`` 2.x, ``transformers``, ``peft`` and ``datasets`` call for model,
adapter, dataset and Space repos (see ``research/hub_ecosystem.md`` §3): whoami, repo create/delete, validate-yaml,
preupload, NDJSON commit (regular base64 files and LFS pointers), the LFS batch/upload/verify protocol, resolve
(HEAD/GET with ``Range``), repo info, tree, paths-info, branches, tags, refs, pull requests (``create_pr=1``; the
discussions API: create, list newest first with type/status/author filters, details with the description as first
comment). Repos live in memory with immutable per-commit snapshots. Xet is not emulated: run the client with
``HF_HUB_DISABLE_XET=1`` (LFS mode), or answer ``uploadMode: regular`` for everything (``HubState.upload_mode``).

It binds 127.0.0.1 on a random port, serves each connection on a daemon thread (at most ``max_connections`` at
once, ``Handler.timeout`` seconds of idle keep-alive, ``max_body`` bytes per request) and can be told to fail:
``hub.fail("POST", r"/commit/", status=503, times=2)`` (status 0 drops the connection without an answer; -1 does
the work first, then drops the connection, as when an answer is lost on the way back).
Every request is logged in ``hub.requests`` (method, path, query) for asserting call sequences. Standard library
only; written from the client's source, not from the Hub's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".parquet", ".arrow", ".png", ".jpg", ".zip", ".gz", ".npz",
                ".pkl", ".h5", ".onnx", ".model", ".msgpack", ".ckpt", ".tflite")
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:  # what preupload reports: sha256 for LFS, git sha1 otherwise (as the client computes)
        return self.sha256 if self.lfs else git_sha1(self.data)

    def tree_item(self, path: str) -> dict[str, Any]:
        item = {"type": "file", "path": path, "size": len(self.data),
                "oid": git_sha1(self.pointer if self.lfs else self.data)}
        if self.lfs:
            item["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return item


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    files: dict[str, Blob]
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


@dataclass
class Repo:
    type: str
    id: str
    owner: str
    private: bool
    sdk: str | None = None
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, dict[str, Any]] = field(default_factory=dict)  # num -> {"head": sha, "title", "author", "base"}


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    times: int
    message: str


class HubState:
    """All repos, LFS objects, users and injected faults; guarded by one lock."""

    def __init__(self, users: dict[str, dict[str, Any]]):
        self.users = users  # token -> {"name", "orgs": [...], "write": bool}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.pending: dict[str, tuple[str, int]] = {}  # upload id -> (sha256, size)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str]] = []
        self.upload_mode = "auto"  # "auto" (LFS for binaries / LFS suffixes) or "regular" (everything inline)
        self.paid_spaces = False  # False: creating a gradio/docker Space answers 402
        self.lock = threading.RLock()

    # --- refs ---------------------------------------------------------------------------------------------------
    def new_commit(self, repo: Repo, parent: str | None, title: str, files: dict[str, Blob]) -> Commit:
        seed = json.dumps([parent, title, sorted((p, b.oid) for p, b in files.items()), secrets.token_hex(4)])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, files)
        repo.commits[commit.sha] = commit
        return commit

    def resolve(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision in repo.tags:
            return repo.commits[repo.tags[revision]]
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match and int(match.group(1)) in repo.prs:
            return repo.commits[repo.prs[int(match.group(1))]["head"]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            for sha, commit in repo.commits.items():
                if sha.startswith(revision):
                    return commit
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def set_head(self, repo: Repo, revision: str, sha: str) -> None:
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            repo.prs[int(match.group(1))]["head"] = sha
        elif revision in repo.branches:
            repo.branches[revision] = sha
        else:
            raise HubError(400, f"Cannot commit to {revision!r}: not a branch", "RevisionNotFound")

    def open_pr(self, repo: Repo, base: str, title: str, author: str, description: str = "") -> int:
        num = max([0, *repo.prs]) + 1
        repo.prs[num] = {"head": self.resolve(repo, base).sha, "title": title, "author": author, "base": base,
                         "status": "open", "description": description}
        return num


# ---------------------------------------------------------------------------------------------------------------
# README metadata checks, written from the hub-docs model-card spec (not from huggingface_hub's parser).
def validate_metadata(content: str) -> list[str]:
    if not content.startswith("---"):
        return []
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if not match:
        return ["YAML front matter is not closed by '---'"]
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        return [f"YAML does not parse: {exc}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    for key in ("tags", "datasets", "language"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) or
                                      (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append('"license" must be a string')
    base = meta.get("base_model")
    if base is not None and not (isinstance(base, str) or (isinstance(base, list) and base)):
        errors.append('"base_model" must be a string or a non-empty list of strings')
    if meta.get("base_model_relation") not in (None, "adapter", "merge", "quantized", "finetune"):
        errors.append('"base_model_relation" must be one of adapter, merge, quantized, finetune')
    index = meta.get("model-index")
    if index is not None:
        if not isinstance(index, list):
            return errors + ['"model-index" must be a list']
        for model in index:
            if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                errors.append('"model-index[].name" is required')
                continue
            for result in model.get("results") or []:
                if not isinstance((result.get("task") or {}).get("type"), str):
                    errors.append('"model-index[].results[].task.type" is required')
                dataset = result.get("dataset") or {}
                if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                    errors.append('"model-index[].results[].dataset" needs "type" and "name"')
                for metric in result.get("metrics") or []:
                    if not isinstance(metric.get("type"), str) or not isinstance(metric.get("value"), (int, float)):
                        errors.append('"model-index[].results[].metrics[]" needs "type" and a numeric "value"')
                source = result.get("source")
                if source is not None and "url" not in source:
                    errors.append('"model-index[].results[].source.url" is required when "source" is set')
    return errors


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a kept-alive connection may sit idle (or a request may stall) before it is closed
    server: LocalHubServer

    def log_message(self, format, *args):
        pass

    # --- plumbing -------------------------------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    @property
    def hub(self) -> HubState:
        return self.server.hub

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.raw_path, self.query = parts.path, parse_qs(parts.query)
        try:
            self.body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send(413 if "too large" in str(exc) else 400, {"error": str(exc)})
            return
        with self.hub.lock:
            self.hub.requests.append((method, unquote(self.raw_path), parts.query))
            fault = next((f for f in self.hub.faults if f.method in (method, "*") and f.pattern.search(self.raw_path)),
                         None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.hub.faults.remove(fault)
        if fault is not None and fault.status == -1:  # do the work, then lose the answer
            with self.hub.lock:
                try:
                    self._route(method)
                except HubError:
                    pass
            fault = Fault(method, fault.pattern, 0, 0, "")
        if fault is not None:
            if fault.status == 0:
                self.close_connection = True
                self.connection.close()
                return
            self._send(fault.status, {"error": fault.message}, headers={"X-Error-Message": fault.message})
            return
        try:
            with self.hub.lock:
                status, payload, headers = self._route(method)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            status, payload = err.status, {"error": err.message}
        self._send(status, payload, headers, head=(method == "HEAD"))

    def _read_body(self) -> bytes:
        """The request body (``Content-Length`` or chunked), at most ``server.max_body`` bytes."""
        limit = self.server.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:  # bounded: every chunk counts against the limit, a zero-size chunk ends the body
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(64):  # skip trailers up to the blank line
                        if self.rfile.readline(1024) in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise ValueError("payload too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise ValueError("payload too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        if isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        headers = {"Content-Type": ctype, **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _json(self) -> Any:
        return json.loads(self.body or b"{}")

    # --- auth -----------------------------------------------------------------------------------------------------
    def _user(self) -> dict[str, Any] | None:
        header = self.headers.get("Authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        user = self.hub.users.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _require_write(self, namespace: str) -> dict[str, Any]:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to write (no token sent)")
        if namespace != user["name"] and namespace not in user.get("orgs", ()):
            raise HubError(403, f"You don't have the rights to create or write to a repo under {namespace!r}")
        if not user.get("write", True):
            raise HubError(403, "This token is read-only: it cannot write to repos")
        return user

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        user = self._require_write(repo_id.split("/")[0]) if write else self._user()
        if repo is None or (repo.private and (user is None or repo.owner not in (user["name"], *user.get("orgs", ())))):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    # --- routing --------------------------------------------------------------------------------------------------
    def _route(self, method: str) -> tuple[int, Any, dict[str, str]]:
        path = self.raw_path
        if path == "/api/whoami-v2" and method == "GET":
            user = self._user()
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return 200, {"type": "user", "name": user["name"], "orgs": [{"name": o} for o in user.get("orgs", ())],
                         "auth": {"type": "access_token",
                                  "accessToken": {"role": "write" if user.get("write", True) else "read"}}}, {}
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if path == "/api/repos/delete" and method == "DELETE":
            body = self._json()
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or self._user()['name']}/{body['name']}"
            self._repo(repo_type, repo_id, write=True)
            del self.hub.repos[(repo_type, repo_id)]
            return 200, {}, {}
        if path == "/api/validate-yaml" and method == "POST":
            errors = validate_metadata(self._json().get("content", ""))
            return (400 if errors else 200), {"errors": [{"message": e} for e in errors], "warnings": []}, {}
        match = re.fullmatch(r"/__lfs__/(upload|verify)/([0-9a-f]+)", path)
        if match:
            return self._lfs_transfer(match.group(1), match.group(2))
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if match and method == "POST":
            return self._lfs_batch(TYPES.get(match.group(1) or "models"), match.group(2))
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
        if match:
            return self._api(method, TYPES[match.group(1)], match.group(2), match.group(3) or "")
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match and method in ("GET", "HEAD"):
            return self._resolve(TYPES[match.group(1) or "models"], match.group(2), unquote(match.group(3)),
                                 unquote(match.group(4)))
        raise HubError(404, f"No route for {method} {path}")

    def _create_repo(self) -> tuple[int, Any, dict[str, str]]:
        body = self._json()
        user = self._user()
        namespace = body.get("organization") or (user["name"] if user else "")
        self._require_write(namespace)
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{body['name']}"
        url = f"{self.server.url}/{PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:  # the Hub's 409 still carries the url (create_repo reads it)
            return 409, {"error": "You already created this repo", "url": url}, {}
        if repo_type == "space" and body.get("sdk") in ("gradio", "docker") and not self.hub.paid_spaces:
            raise HubError(402, "Gradio and Docker Spaces require a paid plan (PRO, Team or Enterprise)")
        private = body.get("visibility") == "private" or bool(body.get("private"))
        repo = Repo(repo_type, repo_id, namespace, private, body.get("sdk"))
        initial = self.hub.new_commit(repo, None, "initial commit", {".gitattributes": Blob(GITATTRIBUTES, False)})
        repo.branches["main"] = initial.sha
        self.hub.repos[(repo_type, repo_id)] = repo
        return 200, {"url": url, "name": repo_id}, {}

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str) -> tuple[int, Any, dict[str, str]]:
        head, _, tail = rest.partition("/")
        if method == "GET" and head in ("", "revision"):
            repo = self._repo(repo_type, repo_id)
            commit = self.hub.resolve(repo, unquote(tail) if head else "main")
            return 200, self._info(repo, commit), {}
        if method == "POST" and head == "preupload":
            repo = self._repo(repo_type, repo_id, write=True)
            return 200, self._preupload(repo, unquote(tail)), {}
        if method == "POST" and head == "commit":
            repo = self._repo(repo_type, repo_id, write=True)
            return 200, self._commit(repo, unquote(tail)), {}
        if method == "GET" and head == "tree":
            repo = self._repo(repo_type, repo_id)
            revision, _, sub = tail.partition("/")
            return 200, self._tree(self.hub.resolve(repo, unquote(revision)), unquote(sub)), {}
        if method == "POST" and head == "paths-info":
            repo = self._repo(repo_type, repo_id)
            commit = self.hub.resolve(repo, unquote(tail))
            wanted = parse_qs(self.body.decode()).get("paths", [])
            return 200, [item for p in wanted for item in self._paths_info(commit, p)], {}
        if head == "branch" and method in ("POST", "DELETE"):
            repo = self._repo(repo_type, repo_id, write=True)
            return self._branch(repo, method, unquote(tail))
        if head == "tag" and method == "POST":
            repo = self._repo(repo_type, repo_id, write=True)
            body = self._json()
            if body["tag"] in repo.tags:
                raise HubError(409, f"Tag {body['tag']} already exists")
            repo.tags[body["tag"]] = self.hub.resolve(repo, unquote(tail)).sha
            return 200, {}, {}
        if method == "GET" and head == "refs":
            repo = self._repo(repo_type, repo_id)
            refs = {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                 for b, s in repo.branches.items()],
                    "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in repo.tags.items()],
                    "converts": []}
            if self.query.get("include_prs", ["0"])[0] in ("1", "true", "True"):
                refs["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": pr["head"]}
                                        for n, pr in repo.prs.items()]
            return 200, refs, {}
        if head == "discussions":
            return self._discussions(method, self._repo(repo_type, repo_id, write=(method == "POST")), tail)
        raise HubError(404, f"No route for {method} {self.raw_path}")

    # --- endpoints ------------------------------------------------------------------------------------------------
    def _info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": repo.id, "_id": repo.id, "sha": commit.sha, "private": repo.private, "author": repo.owner,
            "lastModified": commit.date, "createdAt": next(iter(repo.commits.values())).date, "tags": [],
            "downloads": 0, "likes": 0, "disabled": False, "gated": False,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        if repo.type == "model":
            info["modelId"] = repo.id
        if repo.type == "space":
            info["sdk"] = repo.sdk
        readme = commit.files.get("README.md")
        if readme is not None:
            match = re.match(r"^---\s*\n(.*?)\n---", readme.data.decode("utf-8", "replace"), re.DOTALL)
            if match:
                info["cardData"] = yaml.safe_load(match.group(1)) or {}
        return info

    def _preupload(self, repo: Repo, revision: str) -> dict[str, Any]:
        try:
            files = self.hub.resolve(repo, revision).files
        except HubError:
            if "create_pr" not in self.query:
                raise
            files = {}
        answer = []
        for item in self._json()["files"]:
            sample = base64.b64decode(item.get("sample", ""))
            lfs = self.hub.upload_mode != "regular" and (
                item["path"].endswith(LFS_SUFFIXES) or b"\0" in sample or item["size"] > 10_000_000)
            existing = files.get(item["path"])
            answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                           "oid": existing.oid if existing is not None and existing.lfs == lfs else None})
        return {"files": answer}

    def _commit(self, repo: Repo, revision: str) -> dict[str, Any]:
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        user = self._user()
        pr_num = None
        if "create_pr" in self.query:
            pr_num = self.hub.open_pr(repo, revision, header.get("summary", ""), user["name"],
                                      header.get("description", ""))
            revision = f"refs/pr/{pr_num}"
        base = self.hub.resolve(repo, revision)
        if header.get("parentCommit") and header["parentCommit"] != base.sha:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(base.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = Blob(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                data = self.hub.lfs.get(value["oid"])
                if data is None:
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = Blob(data, True)
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if "README.md" in files:
            errors = validate_metadata(files["README.md"].data.decode("utf-8", "replace"))
            if errors:
                raise HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
        commit = self.hub.new_commit(repo, base.sha, header.get("summary", ""), files)
        self.hub.set_head(repo, revision, commit.sha)
        url = f"{self.server.url}/{PREFIX[repo.type]}{repo.id}"
        answer = {"success": True, "commitOid": commit.sha, "commitUrl": f"{url}/commit/{commit.sha}"}
        if pr_num is not None:
            answer["pullRequestUrl"] = f"{url}/discussions/{pr_num}"
        return answer

    def _lfs_batch(self, repo_type: str, repo_id: str) -> tuple[int, Any, dict[str, str]]:
        body = self._json()
        self._repo(repo_type, repo_id, write=body.get("operation") == "upload")
        objects = []
        for obj in body.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.hub.lfs:
                upload_id = secrets.token_hex(8)
                self.hub.pending[upload_id] = (obj["oid"], obj["size"])
                entry["actions"] = {"upload": {"href": f"{self.server.url}/__lfs__/upload/{upload_id}"},
                                    "verify": {"href": f"{self.server.url}/__lfs__/verify/{upload_id}"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}

    def _lfs_transfer(self, action: str, upload_id: str) -> tuple[int, Any, dict[str, str]]:
        if upload_id not in self.hub.pending:
            raise HubError(404, "Unknown upload")
        oid, size = self.hub.pending[upload_id]
        if action == "upload":
            if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != size:
                raise HubError(400, "Uploaded bytes do not match the announced sha256/size")
            self.hub.lfs[oid] = self.body
            return 200, {}, {}
        body = self._json()
        if body.get("oid") != oid or oid not in self.hub.lfs:
            raise HubError(404, "Object not uploaded")
        del self.hub.pending[upload_id]
        return 200, {"message": "Everything good"}, {}

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        etag = blob.sha256 if blob.lfs else git_sha1(blob.data)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers["X-Linked-Etag"], headers["X-Linked-Size"] = f'"{etag}"', str(len(blob.data))
        data = blob.data
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            start = int(match.group(1)) if match.group(1) else max(len(data) - int(match.group(2)), 0)
            end = int(match.group(2)) if match.group(1) and match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return 206, data[start:end + 1], headers
        return 200, data, headers

    def _tree(self, commit: Commit, sub: str) -> list[dict[str, Any]]:
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"Entry not found: {sub}", "EntryNotFound")
        items, folders = [], set()
        for path in sorted(commit.files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if folder not in folders and (recursive or depth == 1):
                    folders.add(folder)
                    items.append({"type": "directory", "path": folder, "oid": git_sha1(folder.encode())})
            if recursive or len(parts) == 1:
                items.append(commit.files[path].tree_item(path))
        return items

    def _paths_info(self, commit: Commit, path: str) -> list[dict[str, Any]]:
        path = path.strip("/")
        if path in commit.files:
            return [commit.files[path].tree_item(path)]
        if any(p.startswith(path + "/") for p in commit.files) or path == "":
            return [{"type": "directory", "path": path, "oid": git_sha1(path.encode())}]
        return []

    def _branch(self, repo: Repo, method: str, branch: str) -> tuple[int, Any, dict[str, str]]:
        if method == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HubError(404 if branch not in repo.branches else 403, f"Cannot delete branch {branch}")
            del repo.branches[branch]
            return 200, {}, {}
        if branch.startswith("refs/") or branch in repo.tags:
            raise HubError(400, f"Invalid reference for a branch: {branch}")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: {branch}")
        start = self._json().get("startingPoint") or "main"
        repo.branches[branch] = self.hub.resolve(repo, start).sha
        return 200, {}, {}

    def _discussions(self, method: str, repo: Repo, tail: str) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and tail == "":
            body = self._json()
            if not body.get("pullRequest"):
                raise HubError(400, "Only pull requests are supported by this fake Hub")
            num = self.hub.open_pr(repo, "main", body.get("title", ""), self._user()["name"],
                                   body.get("description", ""))
            return 200, {"num": num, "url": f"{self.server.url}/{PREFIX[repo.type]}{repo.id}/discussions/{num}"}, {}

        def summary(num: int, pr: dict[str, Any]) -> dict[str, Any]:
            return {"num": num, "title": pr["title"], "status": pr["status"], "isPullRequest": True,
                    "createdAt": repo.commits[pr["head"]].date, "author": {"name": pr["author"]},
                    "repo": {"name": repo.id, "type": repo.type}}

        if method == "GET" and tail == "":  # newest first, filtered like the Hub's list (one page of 50)
            wanted = {k: self.query[k][0] for k in ("type", "status", "author") if k in self.query}
            found = [summary(n, pr) for n, pr in sorted(repo.prs.items(), reverse=True)
                     if wanted.get("type", "all") in ("all", "pull_request")
                     and wanted.get("status", "all") in ("all", pr["status"])
                     and wanted.get("author", pr["author"]) == pr["author"]]
            start = 50 * int(self.query.get("p", ["0"])[0])
            return 200, {"discussions": found[start:start + 50], "count": len(found), "start": start,
                         "numClosedDiscussions": 0}, {}
        if method == "GET" and tail.isdigit() and int(tail) in repo.prs:
            num, pr = int(tail), repo.prs[int(tail)]
            date = repo.commits[pr["head"]].date
            events = [{"id": f"c{num}", "type": "comment", "createdAt": date, "author": {"name": pr["author"]},
                       "data": {"edited": False, "hidden": False, "latest": {"raw": pr["description"]}}}]
            if pr["head"] != self.hub.resolve(repo, pr["base"]).sha:
                events.append({"id": f"k{num}", "type": "commit", "createdAt": date, "author": {"name": pr["author"]},
                               "data": {"subject": repo.commits[pr["head"]].title, "oid": pr["head"]}})
            return 200, {**summary(num, pr), "events": events, "changes": {"base": f"refs/heads/{pr['base']}"},
                         "filesWithConflicts": [], "diff": ""}, {}
        raise HubError(404, "Discussion not found")


class LocalHubServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a cap on concurrent connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: HubState, max_connections: int = 32, max_body: int = 512 * 1024 * 1024):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hub, self.max_body = hub, max_body
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        self._slots.acquire()
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class LocalHub:
    """The fake Hub's public face for tests: start/stop, users and tokens, fault injection, inspection.

    >>> hub = LocalHub().start()            # hub.url, hub.token (write token of user hub.user)
    >>> hub.fail("POST", r"/commit/", 503)  # the next commit answers 503
    >>> hub.stop()
    """

    def __init__(self, user: str = "hfcl-tester", token: str | None = None, orgs: tuple[str, ...] = ("hfcl-org",)):
        self.user = user
        self.token = token or "hf_" + secrets.token_hex(16)
        self.read_token = "hf_" + secrets.token_hex(16)
        self.state = HubState({self.token: {"name": user, "orgs": list(orgs), "write": True},
                               self.read_token: {"name": user, "orgs": list(orgs), "write": False}})
        self.server: LocalHubServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "LocalHub.start() first"
        return self.server.url

    def start(self) -> LocalHub:
        self.server = LocalHubServer(self.state)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=5)
            self.server = None

    # --- test controls --------------------------------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, status: int, times: int = 1, message: str = "injected failure"):
        """Answer the next ``times`` matching requests with ``status`` (0: drop the connection; -1: process the
        request, then drop the connection)."""
        with self.state.lock:
            self.state.faults.append(Fault(method.upper(), re.compile(path_regex), status, times, message))

    def reset(self) -> None:
        """Forget repos, LFS objects, faults and the request log (between tests)."""
        with self.state.lock:
            self.state.repos.clear()
            self.state.lfs.clear()
            self.state.pending.clear()
            self.state.faults.clear()
            self.state.requests.clear()
            self.state.upload_mode = "auto"
            self.state.paid_spaces = False

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        with self.state.lock:
            return list(self.state.requests)

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self.state.lock:
            return self.state.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Path -> bytes at a revision, read from the server's memory (independent of the client)."""
        with self.state.lock:
            repo = self.state.repos[(repo_type, repo_id)]
            return {p: b.data for p, b in self.state.resolve(repo, revision).files.items()}

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[Commit]:
        """The commit chain of a revision, newest first."""
        with self.state.lock:
            repo = self.state.repos[(repo_type, repo_id)]
            commit, chain = self.state.resolve(repo, revision), []
            while commit is not None:
                chain.append(commit)
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return chain
