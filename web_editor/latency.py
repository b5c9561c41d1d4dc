"""Edit-to-image latency through the editor's HTTP API, as the page sees it (scripts/editor.py --measure_latency N)."""

import json
import statistics
import time
import urllib.request

from options.base_options import OptionsError


def _request(url: str, payload: dict | None = None, session: str = '') -> tuple:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {'X-Editor-Session': session, **({'Content-Type': 'application/json'} if data else {})}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.read(), response.headers


def measure_latency(base_url: str, edits: int) -> dict:
    """Open gallery image 0, then `edits` times: POST a brush stroke, GET the image of that version.

    Each time is from sending the edit to having the new synthesized image, one edit at a time (no
    coalescing helps): applying the stroke, the document reply, the generator, JPEG encoding and HTTP.
    """
    info = json.loads(_request(base_url + 'api/info')[0])
    if not info['gallery']:
        raise OptionsError('--measure_latency opens gallery image 0: pass --dataroot with a label folder')
    session = json.loads(_request(base_url + 'api/session', {})[0])['session']
    document = json.loads(_request(base_url + 'api/open', {'index': 0}, session)[0])
    _request(base_url + f'api/synth?after={document["version"]}', session=session)  # the first run warms the model up
    width, height = document['width'], document['height']
    classes = [entry['id'] for entry in info['classes']]
    totals, renders = [], []
    for step in range(edits):
        # Horizontal strokes of changing classes across the middle third of the map.
        y = height // 3 + (step * 7) % max(height // 3, 1)
        stroke = {
            'op': 'stroke',
            'class': classes[(7 + step) % len(classes)],
            'size': max(width // 32, 1),
            'points': [[width // 4, y], [width // 2, y], [3 * width // 4, y]],
        }
        started = time.perf_counter()
        document = json.loads(_request(base_url + 'api/edit', stroke, session)[0])
        _, headers = _request(base_url + f'api/synth?after={document["version"]}', session=session)
        totals.append(time.perf_counter() - started)
        renders.append(float(headers['X-Render-Ms']) / 1000)

    def summary(values: list) -> dict:
        ordered = sorted(values)
        return {
            'median_ms': 1000 * statistics.median(ordered),
            'p90_ms': 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            'min_ms': 1000 * ordered[0],
            'max_ms': 1000 * ordered[-1],
        }

    _request(base_url + 'api/close', {}, session)
    return {'edits': edits, 'width': width, 'height': height, 'edit_to_image': summary(totals), 'render': summary(renders)}


def format_latency(result: dict, device: str) -> str:
    """The measurement as two lines for the terminal."""
    lines = []
    for key, title in (('edit_to_image', 'edit -> new image (HTTP round trips)'), ('render', 'generator (server side)')):
        figures = result[key]
        lines.append(
            f"{title}: median {figures['median_ms']:.0f} ms, p90 {figures['p90_ms']:.0f} ms, "
            f"min {figures['min_ms']:.0f} ms, max {figures['max_ms']:.0f} ms"
        )
    return f"{result['edits']} edits at {result['width']}x{result['height']} on {device}:\n" + '\n'.join(lines)
