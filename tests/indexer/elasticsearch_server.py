"""An Elasticsearch stand-in for the tests: osmem-server in a subprocess, and the official client
made to talk to it.

No Elasticsearch server can be installed here. `osmem-server` (PyPI, dev extra) bundles a static
in-memory OpenSearch-compatible binary that speaks the same JSON over HTTP. The one obstacle is
the official client's compatibility mode: it sends `application/vnd.elasticsearch+json;
compatible-with=N` as Content-Type, which osmem answers with 406. `PlainJsonNode` rewrites those
headers to plain JSON; it exists only here, so the production path keeps the client unmodified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from elastic_transport import Urllib3HttpNode
from elasticsearch import Elasticsearch

STARTUP_TIMEOUT_S = 20.0

# `application/vnd.elasticsearch+json; compatible-with=9` -> `application/json`, and the same
# for x-ndjson (bulk, msearch).
_COMPATIBLE_MIMETYPE = re.compile(r"application/vnd\.elasticsearch\+([a-z-]+)\s*;\s*compatible-with=\d+")


class OsmemUnavailable(RuntimeError):
    """osmem-server is not installed here or did not come up; the fixtures turn this into a skip."""


def plain_mimetype(value: str) -> str:
    return _COMPATIBLE_MIMETYPE.sub(r"application/\1", value)


class PlainJsonNode(Urllib3HttpNode):
    """Sends `application/json` where the client asks for compatibility mimetypes osmem rejects."""

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if headers:
            # A copy: the client may share the mapping between requests.
            headers = headers.copy()
            for name in ("content-type", "accept"):
                if name in headers:
                    headers[name] = plain_mimetype(headers[name])
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def client_for(url: str, **kwargs) -> Elasticsearch:
    """The official client against osmem; only the node class differs from production."""
    kwargs.setdefault("request_timeout", 10)
    return Elasticsearch(url, node_class=PlainJsonNode, **kwargs)


def wipe(client: Elasticsearch) -> None:
    """Delete every index (their aliases go with them) and template, so tests can share one server.

    By name, not `*`: real Elasticsearch refuses wildcard deletes by default
    (`action.destructive_requires_name`), and this should hold on both.
    """
    names = list(client.indices.get(index="*", expand_wildcards="all"))
    if names:
        client.indices.delete(index=",".join(names))
    for template in client.indices.get_index_template().get("index_templates", []):
        client.indices.delete_index_template(name=template["name"])
    for name in client.indices.get_template():
        client.indices.delete_template(name=name)
    for template in client.cluster.get_component_template().get("component_templates", []):
        client.cluster.delete_component_template(name=template["name"])


def osmem_binary() -> str:
    """The bundled binary (or OSMEM_SERVER_BIN), or OsmemUnavailable saying why not."""
    try:
        from osmem_server import OsmemError, resolve_binary
    except ImportError as exc:
        raise OsmemUnavailable(f"osmem-server is not installed (pip install -e '.[dev]'): {exc}") from None
    try:
        binary = resolve_binary()
    except OsmemError as exc:
        raise OsmemUnavailable(str(exc)) from None
    if not os.access(binary, os.X_OK):
        raise OsmemUnavailable(f"osmem-server binary {binary} is missing or not executable")
    return binary


@dataclass
class OsmemProcess:
    """A running osmem-server; `url` is where it answers."""

    process: subprocess.Popen
    url: str
    logs: Path

    @classmethod
    def start(cls, timeout: float = STARTUP_TIMEOUT_S, port: int = 0) -> OsmemProcess:
        """Start and wait until it answers: on `port`, or (0) on a port the server picks itself (no
        bind-and-release race).

        The server prints one JSON line with its URL when it listens. Output goes to files, not
        pipes: a pipe nobody reads can block the server, and one closed early can kill it.
        `--parent-pid` and the stdin pipe both make it exit with us, even if we are killed.
        """
        binary = osmem_binary()
        logs = Path(tempfile.mkdtemp(prefix="vestis-osmem-"))
        stdout, stderr = logs / "stdout", logs / "stderr"
        args = [binary, "--addr", f"127.0.0.1:{port}", "--no-ja", "--parent-pid", str(os.getpid())]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            try:
                process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=err)
            except OSError as exc:
                raise OsmemUnavailable(f"osmem-server could not be run: {exc}") from None
        server = cls(process, "", logs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reason = f"osmem-server exited with {process.returncode} during startup: {server.stderr()}"
                server.stop()
                raise OsmemUnavailable(reason)
            line, newline, _ = stdout.read_text().partition("\n")
            if newline and not server.url:
                try:
                    server.url = json.loads(line)["url"]
                except (ValueError, KeyError, TypeError):
                    server.stop()
                    raise OsmemUnavailable(f"osmem-server printed no URL, but: {line[:200]}") from None
            if server.url and server.answers():
                return server
            time.sleep(0.02)
        reason = f"osmem-server did not answer within {timeout} s: {server.stderr()}"
        server.stop()
        raise OsmemUnavailable(reason)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Stop, then start a new server on the same port, so clients holding `url` reconnect to it.

        osmem keeps everything in memory: the new server starts empty (no indices, no templates).
        The port can stay taken for a moment after the old server exits; starting is retried until
        `timeout`.
        """
        port = self.port
        self.stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fresh = type(self).start(max(1.0, deadline - time.monotonic()), port=port)
                break
            except OsmemUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        self.process, self.url, self.logs = fresh.process, fresh.url, fresh.logs

    def pause(self) -> None:
        """SIGSTOP: an outage that keeps the data. The port stays open, so requests are accepted by
        the kernel and then hang until the client's timeout; `resume()` serves what was queued."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def answers(self) -> bool:
        # No proxies: urllib would honour http_proxy even for loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stderr(self) -> str:
        return (self.logs / "stderr").read_text(errors="replace").strip()[-2000:] or "(no output)"

    def stop(self, grace: float = 5.0) -> None:
        """Closing stdin asks it to exit; kill if it has not within `grace` seconds."""
        if self.process.poll() is None:
            try:
                self.resume()  # a paused server could not exit
                self.process.stdin.close()
                self.process.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.logs, ignore_errors=True)
