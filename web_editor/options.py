"""Options of scripts/editor.py: every test.py flag, plus where to listen and how large an upload may be."""

import argparse
import math

from options.base_options import OptionsError
from options.test_options import TestOptions


class EditorOptions(TestOptions):
    """test.py's flags (architecture taken from the experiment's architecture.json) and the web server's."""

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the editor's flags to test.py's."""
        parser = super().initialize(parser)
        add = self.group(parser, 'editor').add_argument
        add(
            '--host',
            type=str,
            default='127.0.0.1',
            help='address to listen on; the default serves this machine only (0.0.0.0 opens the editor to the network)',
        )
        add('--port', type=int, default=8765, help='port to listen on (0: any free port)')
        add('--max_upload_mb', type=float, default=16, help='largest label or instance PNG the page may upload, in MB')
        add(
            '--max_pixels',
            type=int,
            default=4096 * 4096,
            help='largest uploaded map, in pixels, both as the file is and after the --loadSize resizing',
        )
        add('--max_sessions', type=int, default=8, help='documents open at once: one per browser tab (session)')
        add('--session_idle_minutes', type=float, default=60, help='a session idle this long is closed and its document let go')
        add(
            '--max_session_mb',
            type=float,
            default=256,
            help="memory of one session's document and its undo steps, in MB (beyond it, the oldest steps go)",
        )
        add(
            '--preview_quality',
            type=int,
            default=95,
            help='JPEG quality of the image the page shows after each edit (the download is a lossless PNG)',
        )
        add('--max_connections', type=int, default=32, help='connections served at once (one thread each); more are refused')
        add('--request_timeout', type=float, default=30, help='seconds a connection may take to send a request (a slow client is cut off)')
        add(
            '--measure_latency',
            type=int,
            default=0,
            help='make this many edits through the HTTP API, print the edit-to-image times and exit',
        )
        return parser

    def validate(self, opt: argparse.Namespace) -> None:
        """The editor paints label maps and picks cluster styles; some test.py modes do not apply."""
        super().validate(opt)
        if opt.label_nc == 0:
            raise OptionsError("the editor paints label maps: a --label_nc 0 model takes RGB images, which it cannot edit")
        if opt.reads_photos:
            raise OptionsError(
                "--use_encoded_image encodes real photos, which an edited map does not have: the editor picks styles from the clusters"
            )
        if opt.export_onnx:
            raise OptionsError("--export_onnx is a test.py mode: run it with test.py")
        if not 0 <= opt.port <= 65535:
            raise OptionsError(f"--port {opt.port} must be in 0..65535 (0: any free port)")
        if opt.max_upload_mb <= 0:
            raise OptionsError(f"--max_upload_mb {opt.max_upload_mb} must be > 0")
        for flag in ('max_pixels', 'max_sessions', 'session_idle_minutes', 'max_session_mb', 'max_connections', 'request_timeout'):
            if not 0 < getattr(opt, flag) < math.inf:
                raise OptionsError(f"--{flag} {getattr(opt, flag)} must be a number > 0")
        if not 1 <= opt.preview_quality <= 100:
            raise OptionsError(f"--preview_quality {opt.preview_quality} must be in 1..100")
        if opt.measure_latency < 0:
            raise OptionsError(f"--measure_latency {opt.measure_latency} must be >= 0")
