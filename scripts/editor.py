"""The interactive editor in the browser: paint a label map, pick each object's style, see the photo update.

    python scripts/editor.py --name quickstart --dataroot ./datasets/synthetic --loadSize 128 --gpu_ids -1

Takes the architecture flags from checkpoints/<name>/architecture.json like test.py (and every test.py flag),
shows the label maps of --dataroot/<phase>_label as a gallery, serves the page on --host:--port
(127.0.0.1:8765) and prints its URL. --measure_latency N measures edit-to-image times and exits.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import METHODS  # noqa: E402
from util.cli import run_main  # noqa: E402
from web_editor.app import build_app  # noqa: E402
from web_editor.latency import format_latency, measure_latency  # noqa: E402
from web_editor.options import EditorOptions  # noqa: E402
from web_editor.server import make_server, server_url  # noqa: E402


def main() -> None:
    """Load the model, serve the editor until Ctrl-C (or measure its latency)."""
    opt = EditorOptions(
        'Serve the interactive editor: paint a label map, pick each object\'s style, see the synthesized photo update.',
        METHODS,
    ).parse()
    app = build_app(opt)
    server = make_server(app, opt.host, opt.port)
    url = server_url(server, opt.host)
    try:
        if opt.measure_latency:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            print(format_latency(measure_latency(url, opt.measure_latency), str(app.model.device)))
            server.shutdown()
            return
        print(f'Editor running at {url}  (Ctrl-C to stop)', flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print('\nEditor stopped')
    finally:
        server.server_close()
        app.close()


if __name__ == '__main__':
    run_main(main)
