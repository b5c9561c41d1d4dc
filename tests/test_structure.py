"""The layering rules of docs/overview.md: util/ at the bottom, no import cycles, options read-only after parse."""

import ast
import os

import pytest

from models import METHODS
from options.base_options import replace
from options.test_options import TestOptions as _TestOptions  # not collected by pytest
from options.train_options import TrainOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('util', 'options', 'data', 'models')
# Which project packages each package may import; everything else in the repository (entry points,
# builders.py, scripts/) sits above them and may import any of them.
ALLOWED = {
    'util': {'util'},
    'options': {'util', 'options'},
    'data': {'util', 'data'},
    'models': {'util', 'data', 'models'},  # a method chooses its dataset
}


def project_imports(path: str) -> set:
    """Top-level project packages/modules a Python file imports (absolute and relative imports)."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    package = os.path.relpath(path, ROOT).split(os.sep)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package] if node.level else [node.module or '']
        else:
            continue
        found.update(name.split('.')[0] for name in names if name.split('.')[0] in PACKAGES + ('builders',))
    return found


def package_files(package: str) -> list:
    """Every .py file of a package."""
    return [
        os.path.join(folder, name) for folder, _, names in os.walk(os.path.join(ROOT, package)) for name in names if name.endswith('.py')
    ]


@pytest.mark.parametrize('package', PACKAGES)
def test_packages_import_only_their_own_layer_and_below(package):
    bad = {os.path.relpath(path, ROOT): sorted(project_imports(path) - ALLOWED[package]) for path in package_files(package)}
    assert {path: names for path, names in bad.items() if names} == {}


def imported_modules(path: str) -> set:
    """Dotted names of what a Python file imports, relative imports resolved against its package."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    package = os.path.relpath(os.path.dirname(path), ROOT).split(os.sep)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            found.update(f'{module}.{alias.name}' for alias in node.names)
    return found


def method_packages() -> list:
    """The method packages of models/ (every folder but the shared room, models/common/)."""
    folder = os.path.join(ROOT, 'models')
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name, '__init__.py')) and name != 'common')


def test_the_shared_room_imports_no_method():
    """models/common/ is what the methods share: an arrow from it into a method would tie every method to that one."""
    assert {'crn', 'pix2pix', 'pix2pixhd'} <= set(method_packages())
    into_methods = {
        os.path.relpath(path, ROOT): sorted(name for name in imported_modules(path) if name.split('.')[:2][-1] in method_packages())
        for path in package_files(os.path.join('models', 'common'))
    }
    assert {path: names for path, names in into_methods.items() if names} == {}


def test_the_import_resolver_sees_relative_imports_into_a_method():
    """The checker itself: a relative import from the shared room into a method is seen with its full name."""
    path = os.path.join(ROOT, 'models', 'common', '_probe.py')
    try:
        with open(path, 'w') as handle:
            handle.write('from ..pix2pixhd import model\nfrom . import labels\n')
        assert imported_modules(path) == {'models.pix2pixhd.model', 'models.common.labels'}
    finally:
        os.remove(path)


def test_util_imports_nothing_above_it():
    """The rule the overview states first: util/ imports nothing from models/, options/, data/."""
    offenders = [
        os.path.relpath(path, ROOT) for path in package_files('util') if project_imports(path) & {'models', 'options', 'data', 'builders'}
    ]
    assert offenders == []


def test_the_layer_check_sees_relative_and_absolute_imports(tmp_path):
    """The checker itself: it must flag an upward import written either way."""
    path = os.path.join(ROOT, 'util', '_layer_probe.py')
    try:
        with open(path, 'w') as handle:
            handle.write('from models.common import labels\nfrom . import util\nimport options.base_options\n')
        assert project_imports(path) == {'models', 'util', 'options'}
    finally:
        os.remove(path)


@pytest.mark.parametrize('parser', [TrainOptions, _TestOptions])
def test_options_are_read_only_after_parse(parser, tmp_path):
    opt = parser('', METHODS).parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), '--name', 'exp'], save=False)
    with pytest.raises(AttributeError, match='read-only after parsing: cannot set opt.batchSize'):
        opt.batchSize = 4
    with pytest.raises(AttributeError, match='read-only'):
        opt.new_value = 1
    with pytest.raises(AttributeError, match='read-only'):
        del opt.name
    changed = replace(opt, batchSize=4)
    assert changed.batchSize == 4 and opt.batchSize == 1
    with pytest.raises(AttributeError, match='read-only'):
        changed.batchSize = 2


def test_derived_options_are_settled_at_parse_time(tmp_path):
    opt = TrainOptions('', METHODS).parse(
        [
            '--gpu_ids',
            '-1',
            '--checkpoints_dir',
            str(tmp_path),
            '--label_feat',
            '--batchSize',
            '3',
            '--print_freq',
            '10',
            '--netG',
            'local',
            '--fp16',
            '--channels_last',
        ],
        save=False,
    )
    assert opt.use_features and opt.device == 'cpu' and opt.amp == 'fp16'
    assert opt.size_base == 2 ** (4 + 1) and opt.print_freq == 30
    assert (opt.world_size, opt.rank) == (1, 0)
    debug = TrainOptions('', METHODS).parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), '--debug'], save=False)
    assert (debug.display_freq, debug.print_freq, debug.niter, debug.niter_decay, debug.max_dataset_size) == (1, 1, 1, 0, 10)
    test = _TestOptions('', METHODS).parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path), '--batchSize', '4'], save=False)
    assert (test.batchSize, test.nThreads, test.serial_batches, test.no_flip) == (1, 1, True, True)


def test_torchrun_environment_sets_rank_and_device(tmp_path, monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('LOCAL_RANK', '1')
    opt = TrainOptions('', METHODS).parse(['--gpu_ids', '-1', '--checkpoints_dir', str(tmp_path)], save=False)
    assert (opt.world_size, opt.rank, opt.device) == (2, 1, 'cpu')


def test_help_groups_every_flag_with_a_help_text(capsys):
    """`--help` has the sections people look for, and no flag without a help text or outside a section."""
    for parser in (TrainOptions('', METHODS).make_parser(), _TestOptions('', METHODS).make_parser()):
        titles = [group.title for group in parser._action_groups]
        for title in ('experiment', 'data', 'generator', 'instance features', 'device and speed'):
            assert title in titles
        for group in parser._action_groups:
            for action in group._group_actions:
                if action.dest == 'help':
                    continue
                assert group.title not in ('positional arguments', 'options', 'optional arguments'), action.dest
                assert action.help and len(action.help) > 10, action.dest
                assert 'default' not in action.help.lower(), action.dest  # the formatter adds '(default: ...)' itself
    train_titles = [group.title for group in TrainOptions('', METHODS).make_parser()._action_groups]
    assert {'discriminator and losses', 'training schedule', 'logging and saving'} <= set(train_titles)
    assert 'test time' in [group.title for group in _TestOptions('', METHODS).make_parser()._action_groups]
    niter = next(a for a in TrainOptions('', METHODS).make_parser()._actions if a.dest == 'niter')
    assert 'epochs' in niter.help
