"""scripts/gpu_check.sh --dry_run: every step of the GPU check, rehearsed at tiny sizes on the CPU."""

import json
import os
import subprocess
import sys

from helpers import REPO_ROOT, SUBPROCESS_ENV, UNDER_CI, interrupt_job
from scripts.benchmark import kind_of, summarize_by_kind
from scripts.gpu_check_summary import key_figure, target_lines

STEPS = (
    'env',
    'vgg_weights',
    'tests',
    'step_pairs',
    'bench_512p',
    'bench_compile',
    'bench_local_2048',
    'bench_pix2pix_256',
    'bench_crn_256p',
    'editor_prep',
    'editor_512p',
    'video_prep',
    'bench_vid2vid_fp32_bf16',
    'bench_biggan_128',
)


def test_dry_run_runs_every_step(tmp_path):
    out = tmp_path / 'out'
    env = dict(SUBPROCESS_ENV, PYTHON=sys.executable)
    result = subprocess.run(
        ['bash', 'scripts/gpu_check.sh', str(out), '--dry_run'], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(out / 'summary.md') as handle:
        summary = handle.read()
    assert summary in result.stdout  # printed at the end
    steps_table = summary.split('\n\n## ')[0]  # the steps; the measured rows, the profile and the targets follow
    rows = {
        line.split(' | ')[0].strip('| '): line.split(' | ')
        for line in steps_table.splitlines()
        if line.startswith('| ') and '---' not in line
    }
    assert set(rows) == {'step', *STEPS}, summary
    statuses = {name: row[1] for name, row in rows.items() if name != 'step'}
    # The paired reference benchmark lives outside the repository (../shared/bench): a fresh clone without it records
    # the step as skipped; CI has it, so there it must run, as a copy with its import of our trainer patched.
    bench = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'bench')
    bench_found = os.path.isfile(os.path.join(bench, 'step_pairs.py'))
    if not bench_found and not UNDER_CI:
        assert statuses.pop('step_pairs').startswith('skipped: not found'), summary
    assert all(status == 'ok' for status in statuses.values()), statuses
    for name in statuses:  # every step that ran left its log
        assert (out / f'{name}.log').is_file(), name
    # the key figures came through from the logs and the benchmark's JSON
    assert 'passed' in rows['tests'][3], summary
    if 'step_pairs' in statuses:
        assert 'ratio' in rows['step_pairs'][3] and 'patched copy' in rows['step_pairs'][3], summary
        log = (out / 'step_pairs.log').read_text()
        assert "is now 'from models.pix2pixhd.trainer import Pix2PixHDTrainer'" in log and 'pair 2:' in log
        # the bench's own files are untouched: only the copy has the patch
        assert 'models.pix2pixHD_trainer' not in (out / 'bench' / 'step_time.py').read_text()
    assert 'fp32' in rows['bench_512p'][3] and 'bf16' in rows['bench_512p'][3] and 'x fp32' in rows['bench_512p'][3]
    assert 'CUDA graphs:' in rows['bench_compile'][3] and 'inference' in rows['bench_local_2048'][3]
    assert 'median' in rows['editor_512p'][3] and 'random-weights' in rows['vgg_weights'][3]
    assert 'fp32' in rows['bench_biggan_128'][3] and 'bf16' in rows['bench_biggan_128'][3], summary
    # every model of the family in fp32 and bf16; the 512p model's batch sweep, Adam's kernels and channels_last
    with open(out / 'bench_512p.json') as handle:
        record = json.load(handle)
    assert {label: (row['precision'], row['batch']) for label, row in record['rows'].items()} == {
        'plain fp32': ('fp32', 1),
        'as flagged': ('bf16', 1),
        'batch 2': ('bf16', 2),
        'foreach Adam': ('bf16', 1),
        'for-loop Adam': ('bf16', 1),
        'channels_last': ('bf16', 1),
        'channels_last, decomposed InstanceNorm': ('bf16', 1),
    }
    for name, model in (
        ('bench_local_2048', 'pix2pixHD'),
        ('bench_pix2pix_256', 'pix2pix'),
        ('bench_crn_256p', 'crn'),
        ('bench_biggan_128', 'biggan'),
    ):
        with open(out / f'{name}.json') as handle:
            record = json.load(handle)
        assert record['model'] == model and [row['precision'] for row in record['rows'].values()] == ['fp32', 'bf16'], name
    measured = summary.split('## Every measured row')[1].split('## ')[0]
    assert measured.count('| bench_') == 7 + 2 + 2 * 5, measured  # every row of every benchmark, none failed
    # the bf16 step's profile by kind: every kind, shares of the whole step
    profile = summary.split('## The bf16 step by kind')[1].split('## ')[0]
    shares = {line.split(' | ')[0].strip('| '): float(line.split(' | ')[1].rstrip('% |')) for line in profile.splitlines() if '%' in line}
    assert set(shares) == {'convolutions', 'normalisation', 'elementwise and other', 'copies / layout changes', 'optimiser', 'idle'}
    assert abs(sum(shares.values()) - 100) < 0.5 and shares['convolutions'] > 0 and shares['optimiser'] > 0, profile
    assert 'by kind' in (out / 'profile_bf16.txt').read_text()
    # the targets are listed, not judged on a dry run
    targets = summary.split('## Issue 32, Part 2 targets')[1]
    assert targets.count('not judged (dry run)') >= 4 and 'met |' not in targets, targets
    # vid2vid's row: one clip of the synthetic video per iteration (2 given + 6 made frames), fp32 and bf16, no target.
    video = rows['bench_vid2vid_fp32_bf16'][3]
    assert 'clip of 6 made frames' in video and 'fp32' in video and 'bf16' in video and 'x fp32' in video
    with open(out / 'bench_vid2vid_fp32_bf16.json') as handle:
        record = json.load(handle)
    assert record['model'] == 'vid2vid' and (record['width'], record['height']) == (64, 32)
    assert [(row['precision'], row['img/iter']) for row in record['rows'].values()] == [('fp32', 6), ('bf16', 6)]
    assert 'target' not in key_figure('bench_vid2vid_fp32_bf16', '', record['rows'], dry_run=False)
    assert os.path.getsize(out / 'vgg19_random.pth') > 500e6  # a whole VGG19, written for the benchmarks
    os.remove(out / 'vgg19_random.pth')  # 550 MB: not worth keeping in pytest's last three temporary folders


def test_a_signal_stops_the_check(tmp_path):
    """Ctrl-C during the check stops the running step and the check (exit 130, the later steps do not run), as a step
    such as train.py may return normally from it."""
    out = tmp_path / 'out'
    # Ctrl-C once the third step (the CUDA tests, pytest) has started and its interpreter is up (torch takes longer
    # than the second to import).
    returncode, stderr = interrupt_job(
        ['bash', 'scripts/gpu_check.sh', str(out), '--dry_run'], dict(SUBPROCESS_ENV, PYTHON=sys.executable),
        ready=(out / 'tests.log').exists, settle=1,
    )  # fmt: skip
    assert returncode == 130, stderr[-2000:]
    assert 'stopped by a signal: the later steps did not run' in stderr
    assert not (out / 'summary.md').exists() and 'editor_512p' not in (out / 'steps.tsv').read_text()
    assert 'KeyboardInterrupt' in (out / 'tests.log').read_text()  # the running step got the Ctrl-C too, not only bash


def test_profile_kinds_and_shares():
    """benchmark.py's profile summary: operator names by kind, shares of the step with idle the unfilled rest."""
    names = {
        'aten::_fused_adam_': 'optimiser',
        'aten::_foreach_addcdiv_': 'optimiser',
        'aten::native_batch_norm_backward': 'normalisation',
        'aten::cudnn_batch_norm': 'normalisation',
        'aten::mkldnn_convolution': 'convolutions',
        'aten::convolution_backward': 'convolutions',
        'sm90_xmma_fprop_implicit_gemm_bf16': 'convolutions',
        'aten::copy_': 'copies / layout changes',
        'aten::reflection_pad2d_backward': 'copies / layout changes',
        'void nchwToNhwcKernel<float>': 'copies / layout changes',
        'aten::leaky_relu_backward': 'elementwise and other',
        'aten::add_': 'elementwise and other',
    }
    assert {name: kind_of(name) for name in names} == names
    shares = summarize_by_kind({'aten::mkldnn_convolution': 6.0, 'aten::add_': 2.0}, wall_ms=10.0)
    assert shares['convolutions'] == 60.0 and shares['elementwise and other'] == 20.0 and shares['idle'] == 20.0
    assert sum(shares.values()) == 100.0
    # several CPU threads can count more than the wall clock: shares of the busy time, none idle
    assert summarize_by_kind({'aten::add_': 30.0}, wall_ms=10.0)['idle'] == 0.0


def test_targets_judge_the_512p_rows_on_a_gpu_run(tmp_path):
    """Read as a GPU run's: the bf16 targets take the best row of the 512p model (any batch), never another model's;
    the reference ratio, the local enhancer's memory and the editor's latency from their logs and rows."""
    (tmp_path / 'step_pairs.log').write_text('cuda step, ..., 6 pairs: reference 60.0 ms, project 45.0 ms: ratio 1.33 (pairs)\n')
    (tmp_path / 'editor_512p.log').write_text('edit -> new image (20 edits): median 52 ms, p90 60 ms\n')

    def row(precision: str, img_s: float, share: str, batch: int = 1, peak_mib: float = 1000.0) -> dict:
        return {'precision': precision, 'img/s': img_s, 'of bf16 peak': share, 'batch': batch, 'peak MiB': peak_mib}

    found = [
        ('bench_512p', 'plain fp32', row('fp32', 10.0, '5.0%')),
        ('bench_512p', 'as flagged', row('bf16', 15.0, '12.0%')),
        ('bench_512p', 'batch 8', row('bf16', 25.0, '26.0%', batch=8)),
        ('bench_compile', 'CUDA graphs', {'error': 'RuntimeError: no'}),
        ('bench_vid2vid_fp32_bf16', 'as flagged', row('bf16', 500.0, '90.0%')),  # another model: no part of the target
        ('bench_local_2048', 'as flagged', row('bf16', 5.0, '10.0%', peak_mib=16000.0)),  # 16.8 GB
    ]
    lines = target_lines([], str(tmp_path), found, dry_run=False)
    verdicts = [line.rsplit(' | ', 1)[1].rstrip(' |') for line in lines[2:]]
    assert verdicts == ['met', 'met', 'met', 'not met', 'not met'], lines
    assert 'batch 8' in lines[3] and '2.50x' in lines[3] and '26.0% at bench_512p: batch 8' in lines[4]
    found[2] = ('bench_512p', 'batch 8', row('bf16', 19.0, '24.0%', batch=8))
    verdicts = [line.rsplit(' | ', 1)[1].rstrip(' |') for line in target_lines([], str(tmp_path), found, dry_run=False)[2:]]
    assert verdicts[1:3] == ['not met', 'not met']
