"""The editor's HTTP server (standard library): the page, its static files and a small JSON API.

Safe by default: it listens on 127.0.0.1, answers only requests addressed to its own host name (no DNS
rebinding), takes JSON POSTs only from its own page (a cross-site form cannot post JSON without a CORS
preflight, which it never grants), names images by gallery index only (never a path from the browser),
and limits the size of every request body. Bounded: each page has its own session (document), a request
must arrive within --request_timeout seconds, and at most --max_connections are served at once.
"""

import base64
import binascii
import io
import json
import math
import os
import re
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from options.base_options import OptionsError
from util.cli import USER_ERRORS as SCRIPT_ERRORS
from util.editing import EditError

from .app import EditorApp, Session, SessionGone, TooManySessions, int_field
from .render import RenderError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
# The only files the server reads for the browser: a fixed table, so no request path ever reaches the file system.
STATIC_FILES = {
    '/': ('index.html', 'text/html; charset=utf-8'),
    '/static/editor.js': ('editor.js', 'text/javascript; charset=utf-8'),
    '/static/editor.css': ('editor.css', 'text/css; charset=utf-8'),
}
MAX_JSON_BYTES = 2**20  # strokes and clicks; uploads have their own limit
MAX_JSON_DEPTH = 8  # the deepest request is a stroke: {"points": [[x, y], ...]}
USER_ERRORS = (EditError, *SCRIPT_ERRORS)  # the user's mistakes: a message on the page
SESSION_HEADER = 'X-Editor-Session'
ASCII_INTEGER = re.compile(r'-?[0-9]{1,10}')  # what a number in a URL or header may be (int() takes other digits too)


class RequestError(Exception):
    """A request the server refuses, with the HTTP status and the message for the page."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class DeadlineReader(io.RawIOBase):
    """A connection's bytes, each receive given only the time left before the request's deadline, so that a
    slow client (one byte at a time) is cut off as surely as a silent one."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.deadline: float | None = None

    def readable(self) -> bool:
        """Yes: this is the request side of the connection."""
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]  # (RawIOBase's signature)
        """Receive into `buffer` before the deadline, else TimeoutError."""
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('the request took too long')
            self.connection.settimeout(left)
        return self.connection.recv_into(buffer)


class EditorRequestHandler(BaseHTTPRequestHandler):
    """Routes the page's requests to the EditorApp; every failure becomes a JSON {"error": message}."""

    app: EditorApp
    allowed_hosts: frozenset | None = None  # None: any Host header (the user chose to listen on all interfaces)
    protocol_version = 'HTTP/1.1'
    server_version = 'pix2pixHD-editor'
    timeout = 30.0  # seconds a request may take to arrive (--request_timeout)

    def setup(self) -> None:
        """Read requests through a DeadlineReader (a deadline per request, not per receive)."""
        super().setup()
        self.rfile.close()  # the stream socketserver made; reading goes through the deadline instead
        self._reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """Wait for, read and answer one request, all of it arriving within `timeout` seconds."""
        self._reader.deadline = time.monotonic() + self.timeout
        super().handle_one_request()  # a request too slow to arrive: http.server closes the connection

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        """Serve the page, its files, images and downloads."""
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        """Apply the page's actions (open, upload, edit, pick)."""
        self._handle(self._post)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        """Quiet: the terminal shows the URL and errors, not every request."""

    # ---------------------------------------------------------------- routing
    def _handle(self, route) -> None:
        self._body_read = self.command != 'POST'
        try:
            self._check_host()
            url = urlsplit(self.path)
            route(url.path, {key: values[-1] for key, values in parse_qs(url.query).items()})
        except RequestError as error:
            self._send_json({'error': str(error)}, error.status)
        except SessionGone as error:
            self._send_json({'error': str(error)}, HTTPStatus.GONE)
        except TooManySessions as error:
            self._send_json({'error': str(error)}, HTTPStatus.SERVICE_UNAVAILABLE)
        except USER_ERRORS as error:
            self._send_json({'error': str(error).strip().splitlines()[-1]}, HTTPStatus.BAD_REQUEST)
        except (RenderError, TimeoutError) as error:
            self._send_json({'error': str(error)}, HTTPStatus.SERVICE_UNAVAILABLE)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception as error:  # a bug: say so on the page and in the terminal, keep serving
            traceback.print_exc(file=sys.stderr)
            self._send_json({'error': f'internal error: {type(error).__name__}: {error}'}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _get(self, path: str, query: dict) -> None:
        app = self.app
        if path in STATIC_FILES:
            file_name, content_type = STATIC_FILES[path]
            with open(os.path.join(STATIC_DIR, file_name), 'rb') as handle:
                self._send(handle.read(), content_type)
        elif path == '/api/info':
            self._send_json(app.info())
        elif path == '/api/thumb':
            self._send(app.thumbnail(int_field(query_ints(query, 'index'), 'index')), 'image/png', cache=True)
        elif path == '/api/synth':
            version, image, seconds = self._session(query).synthesized(int_field(query_ints(query, 'after'), 'after'))
            self._send(image, 'image/jpeg', headers={'X-Version': str(version), 'X-Render-Ms': f'{seconds * 1000:.1f}'})
        elif path == '/api/swatch':
            fields = query_ints(query, 'segment', 'index')
            self._send(self._session(query).swatch(int_field(fields, 'segment'), int_field(fields, 'index')), 'image/png')
        elif path == '/api/download':
            file_name, content_type, data = self._session(query).download(query.get('what', ''))
            self._send(data, content_type, headers={'Content-Disposition': f'attachment; filename="{file_name}"'})
        else:
            raise RequestError(HTTPStatus.NOT_FOUND, f"not found: {path[:200]}; the editor serves its page, its files and /api/*")

    def _post(self, path: str, query: dict) -> None:
        app = self.app
        routes = {'/api/session', '/api/close', '/api/open', '/api/upload', '/api/edit', '/api/pick'}
        if path not in routes:
            raise RequestError(HTTPStatus.NOT_FOUND, f"not found: POST {path[:200]}")
        payload = self._read_json(max_bytes=upload_body_limit(app.max_upload_bytes) if path == '/api/upload' else MAX_JSON_BYTES)
        if path == '/api/session':
            self._send_json({'session': app.new_session(), 'idle_minutes': app.opt.session_idle_minutes})
        elif path == '/api/close':
            app.close_session(self.headers.get(SESSION_HEADER))
            self._send_json({})
        elif path == '/api/open':
            self._send_json(self._session(query).open_index(int_field(payload, 'index')))
        elif path == '/api/upload':
            label_name, label_data = upload_file(payload, 'label')
            inst = upload_file(payload, 'inst') if payload.get('inst') else (None, None)
            self._send_json(self._session(query).open_upload(label_name, label_data, *inst))
        elif path == '/api/edit':
            self._send_json(self._session(query).edit(payload))
        else:
            self._send_json(self._session(query).pick(int_field(payload, 'x'), int_field(payload, 'y')))

    def _session(self, query: dict) -> Session:
        """The document of the page that sent the request (its session key: a header, or ?session= in links)."""
        return self.app.session(self.headers.get(SESSION_HEADER) or query.get('session'))

    # ---------------------------------------------------------------- checks
    def _check_host(self) -> None:
        host = (self.headers.get('Host') or '').lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            raise RequestError(HTTPStatus.FORBIDDEN, f"requests must be addressed to {sorted(self.allowed_hosts)[0]}, not {host[:100]!r}")

    def _read_json(self, max_bytes: int) -> dict:
        origin = self.headers.get('Origin')
        if origin is not None and urlsplit(origin).netloc.lower() != (self.headers.get('Host') or '').lower():
            raise RequestError(HTTPStatus.FORBIDDEN, f"requests from {origin[:100]} are not accepted: use the editor's own page")
        if (self.headers.get('Content-Type') or '').split(';')[0].strip() != 'application/json':
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the editor accepts JSON bodies only (Content-Type: application/json)")
        length_text = self.headers.get('Content-Length')
        if length_text is None or not re.fullmatch('[0-9]{1,15}', length_text):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header (a number of bytes) is required")
        length = int(length_text)
        if length > max_bytes:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request is {length / 2**20:.1f} MB, above the limit of {max_bytes / 2**20:.1f} MB"
                f" (uploads: --max_upload_mb per file)",
            )
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT, f"the request body did not arrive within {self.timeout:g} s (--request_timeout)"
            ) from None
        if len(body) < length:  # the client closed the connection early
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the request body ended after {len(body)} of {length} bytes")
        self._body_read = True
        return parse_json(body)

    # ---------------------------------------------------------------- responses
    def _send(
        self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK, headers: dict | None = None, cache: bool = False
    ) -> None:
        if not self._body_read:
            self.close_connection = True  # an unread request body must not be taken for the next request
        self._reader.deadline = None  # the answer is written under the plain per-send timeout
        self.connection.settimeout(self.timeout)
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'max-age=3600' if cache else 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        # The page loads nothing from elsewhere; images come from the API and data: / blob: URLs.
        self.send_header('Content-Security-Policy', "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, payload: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(payload).encode(), 'application/json', status)


def parse_json(body: bytes) -> dict:
    """A request body as a JSON object of finite numbers and bounded depth, else RequestError (400)."""

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not a number the editor takes")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text[:20]} is out of range")
        return value

    try:
        payload = json.loads(body, parse_constant=refuse_constant, parse_float=finite)
    except RecursionError:
        payload = None  # nested deeper than Python's parser goes: refused below as too deep
    except (ValueError, UnicodeDecodeError) as error:  # ValueError also covers integers of thousands of digits
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON ({str(error)[:200]})") from None
    if payload is None or json_depth(payload) > MAX_JSON_DEPTH:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the request body is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
    return payload


def json_depth(value) -> int:
    """How deeply lists and objects nest in `value` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # no need to look deeper than the limit
                stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def query_ints(query: dict, *keys: str) -> dict:
    """Query parameters as numbers where they are ASCII integers, so int_field can name a bad one."""
    values = {}
    for key in keys:
        text = query.get(key)
        values[key] = int(text) if text is not None and ASCII_INTEGER.fullmatch(text) else text
    return values


def upload_body_limit(max_upload_bytes: int) -> int:
    """Two base64-encoded files (4/3 of their size) and the JSON around them."""
    return 2 * (max_upload_bytes * 4 // 3 + 4) + 2**16


def upload_file(payload: dict, key: str) -> tuple:
    """(name, bytes) of payload[key] = {"name": ..., "data": base64}."""
    part = payload.get(key)
    if not isinstance(part, dict) or not isinstance(part.get('data'), str):
        raise EditError(f"the upload needs '{key}': {{\"name\": file name, \"data\": base64}}")
    try:
        data = base64.b64decode(part['data'], validate=True)
    except (binascii.Error, ValueError):
        raise EditError(f"the {key} upload is not valid base64") from None
    return str(part.get('name') or f'{key}.png'), data


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: one more gets 503 and is closed."""

    daemon_threads = True

    def __init__(self, address: tuple, handler: type, max_connections: int) -> None:
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Serve the connection on its own thread if a slot is free, else refuse it."""
        if not self.slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Serve one connection, then free its slot (before the client sees the connection close)."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.slots.release()
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps(
            {'error': f"the editor is serving {self.max_connections} connections, its limit (--max_connections): try again"}
        ).encode()
        try:
            request.settimeout(1)
            request.recv(65536)  # the request (unread data would turn the close into a reset that hides the answer)
            request.sendall(
                b'HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n'
                + f'Retry-After: 1\r\nContent-Length: {len(body)}\r\n\r\n'.encode()
                + body
            )
        except OSError:
            pass  # the client is gone: nothing to tell it
        self.shutdown_request(request)


def make_server(app: EditorApp, host: str, port: int) -> ThreadingHTTPServer:
    """A bounded threaded server for `app` on host:port (port 0: any free port), refusing other Host headers."""
    try:
        server = BoundedHTTPServer((host, port), EditorRequestHandler, app.opt.max_connections)
    except OSError as error:
        raise OptionsError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); pass another --port (0: any free port) or --host"
        ) from None
    bound_port = server.server_address[1]
    wildcard = host in ('0.0.0.0', '::', '')
    names = {host.lower(), '127.0.0.1', 'localhost', '[::1]'}
    allowed = (
        None if wildcard else frozenset(f'{name}:{bound_port}' for name in names) | frozenset(name for name in names if bound_port == 80)
    )
    server.RequestHandlerClass = type(
        'BoundEditorRequestHandler',
        (EditorRequestHandler,),
        {'app': app, 'allowed_hosts': allowed, 'timeout': app.opt.request_timeout},
    )
    return server


def server_url(server: ThreadingHTTPServer, host: str) -> str:
    """The URL to open in a browser."""
    shown = '127.0.0.1' if host in ('0.0.0.0', '::', '') else host
    return f'http://{shown}:{server.server_address[1]}/'
