"""README.md as a short front door, and the links of README.md and docs/*.md that a clone can follow."""

import glob
import os
import re

import pytest

from helpers import REPO_ROOT

README = os.path.join(REPO_ROOT, 'README.md')
PAGES = [README, *sorted(glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md')))]
# [text](target) and ![alt](target); the target ends at the first space (a "title" may follow) or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
EXTERNAL = re.compile(r'^(?:[a-z][a-z0-9+.-]*:|//)', re.IGNORECASE)  # http:, https:, mailto:, ...


def relative_links(path: str) -> list:
    """(line number, target) of every link in the markdown file that points into the checkout."""
    links = []
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            for target in LINK.findall(line):
                if target.startswith('#') or EXTERNAL.match(target):
                    continue
                links.append((number, target))
    return links


def test_readme_is_short():
    """README.md is a front door of at most 250 lines; the details live in docs/."""
    with open(README, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    assert len(lines) <= 250, f'README.md has {len(lines)} lines (at most 250): move details into docs/'


@pytest.mark.parametrize('page', PAGES, ids=lambda path: os.path.relpath(path, REPO_ROOT))
def test_relative_links_resolve(page):
    """Every relative link of README.md and docs/*.md names an existing file or folder (a #anchor suffix ignored)."""
    broken = []
    for number, target in relative_links(page):
        path = target.split('#', 1)[0]
        if not os.path.exists(os.path.join(os.path.dirname(page), path)):
            broken.append(f'{os.path.relpath(page, REPO_ROOT)}:{number}: {target}')
    assert not broken, 'links to nothing:\n' + '\n'.join(broken)


def test_links_are_found():
    """The link pattern sees the README's picture and its links into docs/ (so the check above checks something)."""
    targets = [target for _, target in relative_links(README)]
    assert any(target.startswith('docs/') and target.endswith('.png') for target in targets)
    assert sum(target.startswith('docs/') and target.endswith('.md') for target in targets) >= 5


@pytest.mark.parametrize('page', PAGES, ids=lambda path: os.path.relpath(path, REPO_ROOT))
def test_no_pointer_outside_the_clone(page):
    """No page points into ../shared, a folder beside the project's own checkouts that a clone does not have."""
    with open(page, encoding='utf-8') as handle:
        text = handle.read()
    assert '../shared' not in text
