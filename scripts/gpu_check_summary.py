"""Write OUT_DIR/summary.md from the steps scripts/gpu_check.sh recorded, print it; exit 1 if a step failed.

    python scripts/gpu_check_summary.py OUT_DIR [--dry_run]

OUT_DIR/steps.tsv holds one row per step (name, status, milliseconds, budget in seconds, JSON file or -);
each step's key figure comes from its log (OUT_DIR/<step>.log) or the benchmark's JSON. Below the steps: every
measured row of every benchmark (model, batch size, precision, flags), the bf16 step's profile by kind, and issue 32's
targets marked met / not met (not judged on a dry run). Standard library only.
"""

import argparse
import json
import os
import re
import sys

# Issue 32's targets, checked where a figure exists (never on a dry run: its sizes are tiny).
TARGET_PAIRS_RATIO = 1.2  # our fp32 step against the 2018 reference's (step_pairs.py's median of pairs)
TARGET_BF16_SPEEDUP = 2.0  # the best bf16 configuration's img/s against our fp32 step's
TARGET_BF16_PEAK_SHARE = 25.0  # % of the card's dense bf16 peak, at some batch size
TARGET_LOCAL_PEAK_GB = 16.0  # the 1024p local enhancer at 2048x1024 in bf16
TARGET_EDIT_MS = 40.0  # the editor's edit-to-image median, 512p model
# The steps the bf16 targets are for (the 512p pix2pixHD model); another model's fp32/bf16 row reports its figures only.
TARGETED = {'bench_512p', 'bench_compile'}


def read_log(out_dir: str, name: str) -> str:
    """The step's log, or '' when it has none."""
    path = os.path.join(out_dir, f'{name}.log')
    if not os.path.isfile(path):
        return ''
    with open(path, errors='replace') as handle:
        return handle.read()


def read_rows(path: str) -> dict | None:
    """The benchmark's rows by path name, or None when it wrote no JSON."""
    if path == '-' or not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)['rows']


def last_match(pattern: str, text: str) -> re.Match | None:
    """The last match of `pattern` in `text` (multiline)."""
    matches = list(re.finditer(pattern, text, re.MULTILINE))
    return matches[-1] if matches else None


def training_figure(label: str, row: dict) -> str:
    """'label: ms/iter, img/s, TFLOP/s (share of the dense bf16 peak)'."""
    speed = f"{row['ms/iter']:.1f} ms/iter, {row['img/s']:.2f} img/s"
    return f"{label} {speed}, {row['TFLOP/s']:.2f} TFLOP/s ({row['of bf16 peak']} of bf16 peak)"


def mark(met: bool, silent: bool) -> str:
    """A target's verdict (none on a dry run, nor for a step without a target)."""
    return '' if silent else (' (target met)' if met else ' (target missed)')


def key_figure(name: str, log: str, rows: dict | None, dry_run: bool) -> str:
    """The one figure that matters for the step."""
    if name == 'env':
        devices = re.findall(r'^\d+ (.+ GiB)$', log, re.MULTILINE)
        torch_line = last_match(r'^torch .*$', log)
        return '; '.join(devices) or (torch_line.group(0) if torch_line else '')
    if name == 'vgg_weights':
        return 'random-weights VGG19 (no ImageNet file given)' if 'random-weights' in log else 'ImageNet VGG19 file' if log else ''
    if name == 'tests':
        found = last_match(r'^=*\s*(\d+ (passed|failed|skipped|error).*?)\s*=*$', log)
        return found.group(1) if found else ''
    if name == 'step_pairs':
        found = last_match(r'reference ([\d.]+) ms, project ([\d.]+) ms: ratio ([\d.]+)', log)
        if not found:
            return ''
        ratio = float(found.group(3))
        figure = f'reference {found.group(1)} ms, ours {found.group(2)} ms: ratio {ratio:.2f} (median of pairs)'
        if 'running a patched copy' in log:
            figure += ', the bench run as a patched copy (its log says what was patched)'
        return figure + mark(ratio >= TARGET_PAIRS_RATIO, dry_run)
    if name == 'editor_512p':
        found = last_match(r'^edit -> new image.*: median (\d+) ms, p90 (\d+) ms', log)
        if not found:
            return ''
        figure = f'edit -> new image: median {found.group(1)} ms, p90 {found.group(2)} ms'
        return figure + mark(float(found.group(1)) < TARGET_EDIT_MS, dry_run)
    if rows is None:
        return ''
    failed = [label for label, row in rows.items() if 'error' in row]
    note = f" ({len(failed)} of {len(rows)} rows failed: {', '.join(failed)})" if failed else ''
    if 'as flagged' not in rows or 'error' in rows['as flagged']:
        return f'no flagged row{note}'
    flagged = rows['as flagged']
    if name == 'bench_local_2048':
        figures = [
            f"{row['precision']} {row['ms/iter']:.1f} ms/iter, peak {gigabytes(row):.2f} GB, inference {row['infer ms/img']:.1f} ms/image"
            for row in rows.values()
            if 'error' not in row
        ]
        return '; '.join(figures) + mark(gigabytes(flagged) <= TARGET_LOCAL_PEAK_GB, dry_run) + note
    if name == 'bench_compile':
        figures = [training_figure(f"{label}:", row) for label, row in rows.items() if 'error' not in row]
        return '; '.join(figures) + note
    figures = []
    if 'plain fp32' in rows:
        figures.append(training_figure('fp32', rows['plain fp32']))
    figure = training_figure(flagged['precision'], flagged)
    if 'plain fp32' in rows:
        # the bf16 targets are judged below the table, on the best of every row of the 512p model (target_lines)
        figure += f", {rows['plain fp32']['ms/iter'] / flagged['ms/iter']:.2f}x fp32"
    if name == 'bench_vid2vid_fp32_bf16':  # an iteration is a clip: img/s counts its made frames
        figures.insert(0, f"clip of {flagged['img/iter']} made frames, peak {gigabytes(flagged):.2f} GB")
    more = len(rows) - len(figures) - 1
    return '; '.join([*figures, figure]) + (f'; {more} more rows below' if more > 0 else '') + note


def gigabytes(row: dict) -> float:
    """A row's peak memory in GB (10^9 bytes, as the 16 GB target)."""
    return row['peak MiB'] * 2**20 / 1e9


def benchmark_rows(steps: list, out_dir: str) -> list[tuple[str, str, dict]]:
    """(step, row label, row) of every benchmark's JSON, in the order measured."""
    found = []
    for name, _, _, _, json_path in steps:
        try:
            rows = read_rows(json_path)
        except (KeyError, ValueError):  # a half-written JSON: the step's row says so
            rows = None
        found += [(name, label, row) for label, row in (rows or {}).items()]
    return found


def rows_table(found: list) -> list[str]:
    """Markdown lines: one per measured row (a failed row with its error)."""
    lines = [
        '| step | row | batch | precision | ms/iter | img/s | TFLOP/s | of bf16 peak | peak GB | inference ms/image |',
        '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for name, label, row in found:
        if 'error' in row:
            lines.append(f"| {name} | {label} | | | failed: {row['error'].replace('|', '/')} | | | | | |")
            continue
        cells = [
            str(row.get('batch', '')),
            row['precision'],
            f"{row['ms/iter']:.1f}",
            f"{row['img/s']:.2f}",
            f"{row['TFLOP/s']:.2f}",
            row['of bf16 peak'],
            f'{gigabytes(row):.2f}',
            f"{row['infer ms/img']:.1f}",
        ]
        lines.append(f"| {name} | {label} | {' | '.join(cells)} |")
    return lines


def profile_lines(found: list) -> list[str]:
    """Markdown lines: the profiled step's share by kind (benchmark.py --profile), or a line saying there is none."""
    profiled = [(name, label, row) for name, label, row in found if 'profile by kind %' in row]
    if not profiled:
        return ['No profile by kind (the profiled step did not run).']
    name, label, row = profiled[0]
    lines = [f"{name}, {label} ({row['precision']}, batch {row.get('batch', '?')}): share of one profiled step", '']
    lines += ['| kind | share |', '| --- | ---: |']
    lines += [f'| {kind} | {share:.1f}% |' for kind, share in row['profile by kind %'].items()]
    return lines


def verdict(met: bool | None, dry_run: bool) -> str:
    """met / not met / not measured (dry run: not judged)."""
    if met is None:
        return 'not measured'
    return 'not judged (dry run)' if dry_run else ('met' if met else 'not met')


def target_lines(steps: list, out_dir: str, found: list, dry_run: bool) -> list[str]:
    """Markdown lines: issue 32's Part 2 targets with the figures they were judged on."""
    lines = ['| target | figure | verdict |', '| --- | --- | --- |']
    pairs = last_match(r'reference ([\d.]+) ms, project ([\d.]+) ms: ratio ([\d.]+)', read_log(out_dir, 'step_pairs'))
    ratio = float(pairs.group(3)) if pairs else None
    figure = f'ratio {ratio:.2f} (median of pairs, batch 1)' if ratio is not None else 'no step_pairs figure'
    met = ratio >= TARGET_PAIRS_RATIO if ratio is not None else None
    lines.append(f'| our fp32 step >= {TARGET_PAIRS_RATIO}x the 2018 reference | {figure} | {verdict(met, dry_run)} |')

    ok = [(name, label, row) for name, label, row in found if name in TARGETED and 'error' not in row]
    fp32 = [row for _, _, row in ok if row['precision'] == 'fp32']
    bf16 = [(f'{name}: {label}', row) for name, label, row in ok if row['precision'] == 'bf16']
    if fp32 and bf16:
        best_label, best = max(bf16, key=lambda item: item[1]['img/s'])
        speedup = best['img/s'] / fp32[0]['img/s']
        # img/s, so that a larger batch counts what it buys; the fp32 step is the plain batch-1 row
        figure = (
            f"{best_label}, batch {best.get('batch', '?')}: {best['img/s']:.2f} img/s, {speedup:.2f}x the fp32 step's "
            f"{fp32[0]['img/s']:.2f} (batch {fp32[0].get('batch', '?')})"
        )
        met = speedup >= TARGET_BF16_SPEEDUP
        lines.append(f'| best bf16 >= {TARGET_BF16_SPEEDUP}x our fp32 (img/s) | {figure} | {verdict(met, dry_run)} |')
    else:
        lines.append(f'| best bf16 >= {TARGET_BF16_SPEEDUP}x our fp32 (img/s) | no fp32 and bf16 rows | not measured |')
    what = f'bf16 >= {TARGET_BF16_PEAK_SHARE:.0f}% of the dense bf16 peak at some batch size'
    shares = [(label, row, float(row['of bf16 peak'].rstrip('%'))) for label, row in bf16 if row['of bf16 peak'] != 'n/a']
    if shares:
        label, row, share = max(shares, key=lambda item: item[2])
        figure = f"{share:.1f}% at {label}, batch {row.get('batch', '?')}"
        lines.append(f'| {what} | {figure} | {verdict(share >= TARGET_BF16_PEAK_SHARE, dry_run)} |')
    else:
        lines.append(f'| {what} | no peak known for this device | not measured |')
    local = [row for name, _, row in found if name == 'bench_local_2048' and 'error' not in row and row['precision'] == 'bf16']
    figure = f'peak {gigabytes(local[0]):.2f} GB' if local else 'no bf16 row'
    met = gigabytes(local[0]) <= TARGET_LOCAL_PEAK_GB if local else None
    lines.append(f'| 1024p local enhancer, 2048x1024 bf16, within {TARGET_LOCAL_PEAK_GB:.0f} GB | {figure} | {verdict(met, dry_run)} |')
    edit = last_match(r'^edit -> new image.*: median (\d+) ms', read_log(out_dir, 'editor_512p'))
    figure = f'median {edit.group(1)} ms' if edit else 'no editor figure'
    met = float(edit.group(1)) < TARGET_EDIT_MS if edit else None
    lines.append(f'| editor edit-to-image below {TARGET_EDIT_MS:.0f} ms (512p) | {figure} | {verdict(met, dry_run)} |')
    return lines


def main() -> None:
    """Read the steps, write summary.md, print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir')
    parser.add_argument('--dry_run', action='store_true')
    args = parser.parse_args()
    with open(os.path.join(args.out_dir, 'steps.tsv')) as handle:
        steps = [line.rstrip('\n').split('\t') for line in handle if line.strip()]
    title = '# GPU check' + (' (dry run: tiny sizes on the CPU; the figures mean nothing)' if args.dry_run else '')
    lines = [title, '', '| step | status | time s (budget) | key figure |', '| --- | --- | ---: | --- |']
    total_ms = total_budget = 0
    for name, status, milliseconds, budget, json_path in steps:
        try:
            figure = key_figure(name, read_log(args.out_dir, name), read_rows(json_path), args.dry_run)
        except (KeyError, ValueError, TypeError) as error:  # a half-written log or JSON: say so, keep the table
            figure = f'(no figure: {type(error).__name__} {error})'
        total_ms += int(milliseconds)
        total_budget += int(budget)
        lines.append(f'| {name} | {status} | {int(milliseconds) / 1000:.1f} ({budget}) | {figure.replace("|", "/")} |')
    failed = sum(1 for step in steps if not (step[1] == 'ok' or step[1].startswith('skipped')))
    lines.append('')
    lines.append(f'{len(steps)} steps, {failed} not ok; {total_ms / 1000:.0f} s of {total_budget} s budgeted; logs: {args.out_dir}/')
    found = benchmark_rows(steps, args.out_dir)
    lines += ['', '## Every measured row', '', *rows_table(found)]
    lines += ['', '## The bf16 step by kind', '', *profile_lines(found)]
    lines += ['', '## Issue 32, Part 2 targets', '', *target_lines(steps, args.out_dir, found, args.dry_run)]
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(args.out_dir, 'summary.md'), 'w') as handle:
        handle.write(text)
    print(text, end='')
    sys.exit(1 if failed else 0)  # every step ran; the exit status still says whether all went well


if __name__ == '__main__':
    main()
