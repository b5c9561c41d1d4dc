"""Load test of the browser editor: N clients, each with its own session, make brush strokes for a while.

    python scripts/editor_load.py --clients 4 --seconds 60 -- --name quickstart --dataroot ./datasets/synthetic --loadSize 128 --gpu_ids -1

Starts scripts/editor.py on 127.0.0.1 (a free port; loopback only) with the flags after `--`, lets each
client open a gallery map (of the first three) in its own session and then, until the time is up, POST a stroke and GET the
image of that version (one at a time per client), and prints the edit-to-image latency percentiles,
the errors by HTTP status and the server's resident memory (RSS) before, at most and after. It stops
by itself: after --seconds, it stops the clients and the server.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from options.base_options import OptionsError  # noqa: E402
from util.cli import run_main  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_SECONDS = 600


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (ps, on Linux and macOS)."""
    return int(subprocess.run(['ps', '-o', 'rss=', '-p', str(pid)], capture_output=True, text=True, check=True).stdout) / 1024


class Client:
    """One browser tab's worth of requests over one keep-alive connection, in its own session."""

    def __init__(self, port: int, index: int) -> None:
        self.connection = http.client.HTTPConnection('127.0.0.1', port, timeout=300)
        self.index = index
        self.session = ''
        self.latencies: list = []
        self.errors: dict = {}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple:
        """(status, body bytes); a refused request is counted under its status."""
        headers = {'X-Editor-Session': self.session}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers['Content-Type'] = 'application/json'
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            status, payload = str(response.status), response.read()
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()  # reconnects on the next request
            status, payload = type(error).__name__, b''
        if status != '200':
            self.errors[status] = self.errors.get(status, 0) + 1
        return status, payload

    def run(self, deadline: float) -> None:
        """Open a map in a new session, then stroke until `deadline`."""
        status, body = self.request('POST', '/api/session', {})
        if status != '200':
            return
        self.session = json.loads(body)['session']
        status, body = self.request('POST', '/api/open', {'index': self.index % 3})
        if status != '200':
            return
        document = json.loads(body)
        width, height = document['width'], document['height']
        step = 0
        while time.monotonic() < deadline:
            # Horizontal strokes of changing classes and rows, as in --measure_latency.
            y = height // 3 + (step * 7) % max(height // 3, 1)
            stroke = {
                'op': 'stroke',
                'class': (7 + step) % 35,
                'size': max(width // 32, 1),
                'points': [[width // 4, y], [3 * width // 4, y]],
            }
            started = time.perf_counter()
            status, body = self.request('POST', '/api/edit', stroke)
            if status == '200':
                status, _ = self.request('GET', f'/api/synth?after={json.loads(body)["version"]}')
                if status == '200':
                    self.latencies.append(time.perf_counter() - started)
            step += 1
        self.request('POST', '/api/close', {})
        self.connection.close()


def percentile(ordered: list, fraction: float) -> float:
    """The value at `fraction` of the sorted list (nearest rank)."""
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def main() -> None:
    """Start the editor, run the clients, print the figures, stop the editor."""
    arguments = sys.argv[1:]
    split = arguments.index('--') if '--' in arguments else len(arguments)
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], usage='%(prog)s [--clients N] [--seconds S] -- EDITOR FLAGS')
    parser.add_argument('--clients', type=int, default=4, help='clients making strokes at once, each in its own session')
    parser.add_argument('--seconds', type=float, default=60, help=f'how long the clients make strokes (at most {MAX_SECONDS})')
    opt = parser.parse_args(arguments[:split])
    editor_flags = arguments[split + 1 :]
    if not 1 <= opt.clients <= 64:
        raise OptionsError(f'--clients {opt.clients} must be in 1..64')
    if not 0 < opt.seconds <= MAX_SECONDS:
        raise OptionsError(f'--seconds {opt.seconds:g} must be in (0, {MAX_SECONDS}]')
    if any(flag in ('--host', '--port', '--measure_latency') or flag.startswith(('--host=', '--port=')) for flag in editor_flags):
        raise OptionsError('the load test serves on 127.0.0.1 at a free port: leave --host, --port and --measure_latency out')

    with tempfile.TemporaryDirectory(prefix='editor-load-') as folder:
        log_path = os.path.join(folder, 'editor.log')
        command = [sys.executable, os.path.join(REPO_ROOT, 'scripts', 'editor.py'), *editor_flags, '--host', '127.0.0.1', '--port', '0']
        if not any(flag.startswith('--max_sessions') for flag in editor_flags):
            command += ['--max_sessions', str(max(opt.clients, 8))]
        with open(log_path, 'w') as log:
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = wait_for_port(server, log_path)
            before = rss_mb(server.pid)
            deadline = time.monotonic() + opt.seconds
            clients = [Client(port, index) for index in range(opt.clients)]
            threads = [threading.Thread(target=client.run, args=(deadline,), daemon=True) for client in clients]
            for thread in threads:
                thread.start()
            peak = before
            while any(thread.is_alive() for thread in threads):  # the clients stop at the deadline (a request times out at 300 s)
                peak = max(peak, rss_mb(server.pid))
                time.sleep(1)
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
        if 'Traceback' in open(log_path).read():
            print(open(log_path).read()[-3000:], file=sys.stderr)
    latencies = sorted(value for client in clients for value in client.latencies)
    errors: dict = {}
    for client in clients:
        for status, count in client.errors.items():
            errors[status] = errors.get(status, 0) + count
    print(f'{opt.clients} clients x {opt.seconds:g} s, one session each, against 127.0.0.1:{port}')
    print(f'strokes with their image: {len(latencies)} ({len(latencies) / opt.seconds:.1f}/s); errors: {errors or "none"}')
    if latencies:
        figures = ', '.join(
            f'{name} {1000 * percentile(latencies, fraction):.0f} ms' for name, fraction in (('p50', 0.5), ('p90', 0.9), ('p99', 0.99))
        )
        print(f'edit -> image: {figures}, max {1000 * latencies[-1]:.0f} ms')
    print(f'server RSS: {before:.0f} MB before, {peak:.0f} MB at most, {after:.0f} MB after')


def wait_for_port(server: subprocess.Popen, log_path: str) -> int:
    """The editor's port, once it prints its URL (or OptionsError with its last lines if it stops)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = re.search(r'Editor running at http://127\.0\.0\.1:(\d+)/', open(log_path).read())
        if match:
            return int(match.group(1))
        if server.poll() is not None:
            raise OptionsError('the editor did not start: ' + open(log_path).read().strip().splitlines()[-1])
        time.sleep(0.2)
    raise OptionsError('the editor did not start within 300 s')


if __name__ == '__main__':
    run_main(main)
