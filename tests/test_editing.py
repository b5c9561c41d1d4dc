"""The editor's edit operations (util/editing.py) as pure functions on small arrays: brush and fill,
new instance ids, erase, relabelling an object and a class, styles -> the generator's feature map,
undo/redo; and the model thread that lets the newest edit win (web_editor/render.py)."""

import json
import threading

import numpy as np
import pytest
import torch

from models.common.labels import parse_int_pairs, relabel_maps
from models.pix2pixhd.styles import FeatureSampler
from util import editing
from util.editing import EditError, EditState, History

ROAD, BUILDING, VEGETATION, SKY, CAR, TRUCK = 7, 11, 21, 23, 26, 27
OBJECTS = editing.CITYSCAPES_OBJECT_CLASSES


def street() -> tuple:
    """A 12x16 scene: sky on top, a building and a tree on the left/right, road below, cars 26000 and 26001."""
    label = np.full((12, 16), SKY, np.uint16)
    label[4:, :] = ROAD
    label[1:6, 0:5] = BUILDING
    label[2:6, 12:16] = VEGETATION
    inst = label.copy()
    label[7:10, 2:6] = CAR
    inst[7:10, 2:6] = 26000
    label[8:11, 9:13] = CAR
    inst[8:11, 9:13] = 26001
    return label, inst


def frozen(*arrays):
    """Copies to compare against after an operation: inputs must stay untouched."""
    return [array.copy() for array in arrays]


# ---------------------------------------------------------------- brush and fill
def test_brush_mask_is_a_disc_along_the_stroke():
    assert editing.brush_mask((5, 5), [(2, 2)], 1).sum() == 1  # size 1: exactly the pixel under the pointer
    assert editing.brush_mask((5, 5), [(2, 2)], 2).sum() == 5  # size 2: the pixel and its 4 neighbours
    disc = editing.brush_mask((9, 9), [(4, 4)], 5)
    ys, xs = np.nonzero(disc)
    assert np.all((ys - 4) ** 2 + (xs - 4) ** 2 <= 2.5**2) and disc.sum() == 21
    line = editing.brush_mask((5, 20), [(2, 2), (17, 2)], 1)
    assert np.array_equal(np.nonzero(line[2])[0], np.arange(2, 18)) and line.sum() == 16  # no gaps between points
    assert editing.brush_mask((5, 5), [(40, 40)], 3).sum() == 0  # outside the map: clipped, no error
    corner = editing.brush_mask((5, 5), [(0, 0)], 3)
    assert corner.sum() == 4 and corner[:2, :2].all()  # the 3x3 disc cut by the border


def test_stroke_of_stuff_paints_label_and_instance_ids_exactly():
    label, inst = street()
    before = frozen(label, inst)
    new_label, new_inst = editing.stroke(label, inst, [(1, 5), (14, 5)], 3, BUILDING, OBJECTS)
    assert all(np.array_equal(a, b) for a, b in zip(before, (label, inst), strict=True))  # pure: inputs untouched
    painted = editing.brush_mask(label.shape, [(1, 5), (14, 5)], 3)
    assert np.all(new_label[painted] == BUILDING) and np.all(new_inst[painted] == BUILDING)
    assert np.array_equal(new_label[~painted], label[~painted]) and np.array_equal(new_inst[~painted], inst[~painted])
    assert new_label.dtype == label.dtype and set(np.unique(new_label)) <= {SKY, ROAD, BUILDING, VEGETATION, CAR}


def test_painting_an_object_class_makes_new_objects_or_extends_the_one_under_the_start():
    label, inst = street()
    assert editing.new_object_id(inst, CAR) == 26002
    assert editing.new_object_id(inst, TRUCK) == 27000
    first_label, first_inst = editing.stroke(label, inst, [(7, 5), (8, 5)], 1, CAR, OBJECTS)
    assert set(np.unique(first_inst[first_label == CAR])) == {26000, 26001, 26002}
    second_label, second_inst = editing.stroke(first_label, first_inst, [(14, 1)], 1, CAR, OBJECTS)
    assert second_inst[1, 14] == 26003  # a second stroke elsewhere is another object
    extended_label, extended_inst = editing.stroke(label, inst, [(3, 8), (3, 11)], 1, CAR, OBJECTS)
    assert extended_inst[11, 3] == 26000 and extended_label[11, 3] == CAR  # started on car 26000: the same car grows
    assert editing.stroke(label, inst, [(1, 1)], 1, BUILDING, OBJECTS)[1][1, 1] == BUILDING  # stuff keeps the class id
    full = np.full((2, 2), 26999, np.uint16)
    with pytest.raises(EditError, match='no free instance id'):
        editing.new_object_id(full, CAR)
    with pytest.raises(EditError, match='does not touch'):
        editing.stroke(label, inst, [(99, 99)], 2, CAR, OBJECTS)


def test_fill_takes_the_connected_region_only():
    label = np.full((6, 6), ROAD, np.uint16)
    label[:, 3] = BUILDING  # splits the road into two regions
    label[0, 4] = BUILDING
    inst = label.copy()
    new_label, new_inst = editing.fill(label, inst, 0, 0, VEGETATION, OBJECTS)
    assert np.all(new_label[:, :3] == VEGETATION) and np.all(new_label[:, 4:][label[:, 4:] == ROAD] == ROAD)
    assert np.all(new_inst[:, :3] == VEGETATION)
    # 4-connectivity: a diagonal neighbour is another region
    diagonal = np.array([[1, 0], [0, 1]], np.uint16)
    filled, _ = editing.fill(diagonal, diagonal.copy(), 0, 0, 5, OBJECTS)
    assert filled.tolist() == [[5, 0], [0, 1]]
    # filling with an object class makes one new object; a click on an object fills that object only
    car_label, car_inst = editing.fill(label, inst, 5, 5, CAR, OBJECTS)
    assert set(np.unique(car_inst[car_label == CAR])) == {26000}
    street_label, street_inst = street()
    truck_label, truck_inst = editing.fill(street_label, street_inst, 3, 8, TRUCK, OBJECTS)
    assert np.all(truck_label[street_inst == 26000] == TRUCK) and np.all(truck_inst[street_inst == 26000] == 27000)
    assert np.all(truck_inst[street_inst == 26001] == 26001)
    with pytest.raises(EditError, match='outside'):
        editing.fill(label, inst, 6, 0, CAR, OBJECTS)


def test_eyedropper_picks_class_and_instance():
    label, inst = street()
    assert editing.pick(label, inst, 3, 8) == (CAR, 26000)
    assert editing.pick(label, inst, 0, 0) == (SKY, SKY)
    with pytest.raises(EditError, match='outside the 16x12 map'):
        editing.pick(label, inst, 16, 0)


# ---------------------------------------------------------------- objects and classes
def test_erase_object_fills_it_with_its_surroundings():
    label, inst = street()
    before = frozen(label, inst)
    new_label, new_inst = editing.erase_object(label, inst, 26001)
    assert all(np.array_equal(a, b) for a, b in zip(before, (label, inst), strict=True))
    assert not np.any(new_inst == 26001) and np.all(new_label[inst == 26001] == ROAD) and np.all(new_inst[inst == 26001] == ROAD)
    assert np.array_equal(new_label[inst != 26001], label[inst != 26001])
    assert np.array_equal(new_inst[inst == 26000], inst[inst == 26000])  # other objects untouched
    # each pixel takes its nearest outside pixel: a car between building (left) and road (right) splits between them
    strip_label = np.array([[BUILDING, CAR, CAR, CAR, CAR, ROAD]], np.uint16)
    strip_inst = np.array([[BUILDING, 26000, 26000, 26000, 26000, ROAD]], np.uint16)
    erased_label, erased_inst = editing.erase_object(strip_label, strip_inst, 26000)
    assert erased_label.tolist() == [[BUILDING, BUILDING, BUILDING, ROAD, ROAD, ROAD]]
    assert erased_inst.tolist() == erased_label.tolist()
    with pytest.raises(EditError, match='not in the map'):
        editing.erase_object(label, inst, 26005)
    with pytest.raises(EditError, match='whole map'):
        editing.erase_object(np.full((2, 2), CAR), np.full((2, 2), 26000), 26000)


def test_relabel_object_gives_it_a_new_id_of_its_new_class():
    label, inst = street()
    new_label, new_inst = editing.relabel_object(label, inst, 26001, TRUCK, OBJECTS)
    assert np.all(new_label[inst == 26001] == TRUCK) and np.all(new_inst[inst == 26001] == 27000)
    assert np.array_equal(new_inst[inst != 26001], inst[inst != 26001])
    stuff_label, stuff_inst = editing.relabel_object(label, inst, 26000, VEGETATION, OBJECTS)
    assert np.all(stuff_label[inst == 26000] == VEGETATION) and np.all(stuff_inst[inst == 26000] == VEGETATION)


def test_relabel_class_matches_test_py_relabel_and_keeps_objects_apart():
    label, inst = street()
    # trees -> buildings, the paper's edit; cars -> trucks keep their index as test.py --relabel does
    for source, target in ((VEGETATION, BUILDING), (CAR, TRUCK)):
        new_label, new_inst = editing.relabel_class(label, inst, source, target)
        expected_label, expected_inst = relabel_maps(
            torch.from_numpy(label.astype(np.int32)), torch.from_numpy(inst.astype(np.int32)), {source: target}
        )
        assert np.array_equal(new_label, expected_label.numpy()) and np.array_equal(new_inst, expected_inst.numpy())
        assert new_label.dtype == label.dtype and new_inst.dtype == inst.dtype
    # a target class that already has those ids: the moved objects get free ones instead of merging
    inst_with_truck = inst.copy()
    inst_with_truck[0, 0] = 27001
    label_with_truck = label.copy()
    label_with_truck[0, 0] = TRUCK
    merged_label, merged_inst = editing.relabel_class(label_with_truck, inst_with_truck, CAR, TRUCK)
    assert merged_inst[0, 0] == 27001
    assert len({merged_inst[8, 3], merged_inst[9, 10], 27001}) == 3  # three separate trucks
    assert np.all(merged_label[label == CAR] == TRUCK)


# ---------------------------------------------------------------- styles
CENTERS = {CAR: np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], np.float32), ROAD: np.array([[0.5, 0.5, 0.5]], np.float32)}
COUNTS = {class_id: rows.shape[0] for class_id, rows in CENTERS.items()}


def test_reconcile_keeps_chosen_styles_and_draws_for_new_segments():
    label, inst = street()
    segments = editing.style_segments(label, inst, by_label=False)
    assert segments.tolist() == [ROAD, BUILDING, VEGETATION, SKY, 26000, 26001]
    rng = np.random.default_rng(0)
    styles = editing.reconcile_styles({}, segments, COUNTS, rng)
    assert set(styles) == {ROAD, 26000, 26001}  # only classes with clusters
    assert all(0 <= styles[s] < COUNTS[editing.class_of(s)] for s in styles)
    kept = editing.reconcile_styles({26000: 2, 26001: 1, 26005: 0}, segments, COUNTS, rng)
    assert kept[26000] == 2 and kept[26001] == 1 and 26005 not in kept  # gone objects are dropped
    preset = editing.reconcile_styles({}, segments, COUNTS, rng, preset={CAR: 1, 26001: 2})
    assert preset[26000] == 1 and preset[26001] == 2  # --feat_choice: an instance choice wins over its class
    by_class = editing.style_segments(label, inst, by_label=True)
    assert by_class.tolist() == [ROAD, BUILDING, VEGETATION, SKY, CAR]


def test_style_choices_change_only_the_chosen_object_in_the_feature_map():
    label, inst = street()
    styles = {ROAD: 0, 26000: 0, 26001: 0}
    inst_map = torch.from_numpy(inst.astype(np.int32))[None, None]
    before = FeatureSampler(CENTERS, 3, styles, seed=1).sample(inst_map)
    assert torch.equal(before, FeatureSampler(CENTERS, 3, styles, seed=2).sample(inst_map))  # every segment chosen: no randomness
    chosen = editing.choose_style(styles, 26001, 2, COUNTS)
    after = FeatureSampler(CENTERS, 3, chosen, seed=1).sample(inst_map)
    changed = (before != after).any(dim=1)[0].numpy()
    assert np.array_equal(changed, inst == 26001)
    assert torch.equal(after[0, :, 9, 10], torch.tensor([0.0, 0.0, 1.0]))  # the object carries centre 2 of its class
    class_wide = editing.choose_class_style(styles, CAR, 1, COUNTS)
    assert class_wide == {ROAD: 0, 26000: 1, 26001: 1}
    for bad in ((26001, 3), (26005, 0), (BUILDING, 0)):
        with pytest.raises(EditError):
            editing.choose_style(styles, *bad, COUNTS)
    with pytest.raises(EditError, match='no clusters'):
        editing.choose_class_style(styles, BUILDING, 0, COUNTS)


def test_feat_choice_json_reproduces_the_feature_map_through_test_py_parsing(tmp_path):
    label, inst = street()
    styles = {ROAD: 0, 26000: 2, 26001: 1}
    path = tmp_path / 'styles.json'
    path.write_text(editing.feat_choice_json(styles))
    assert json.loads(path.read_text()) == {'7': 0, '26000': 2, '26001': 1}
    parsed = parse_int_pairs(str(path), '--feat_choice')
    inst_map = torch.from_numpy(inst.astype(np.int32))[None, None]
    from_file = FeatureSampler(CENTERS, 3, parsed, seed=5).sample(inst_map)
    assert torch.equal(from_file, FeatureSampler(CENTERS, 3, styles, seed=6).sample(inst_map))


def test_shuffle_gives_every_multi_style_segment_another_style():
    styles = {ROAD: 0, 26000: 0, 26001: 2}
    for seed in range(5):
        shuffled = editing.shuffle_styles(styles, COUNTS, np.random.default_rng(seed))
        assert shuffled[ROAD] == 0  # one cluster only: nothing else to pick
        assert shuffled[26000] != 0 and shuffled[26001] != 2 and all(0 <= shuffled[s] < 3 for s in (26000, 26001))


# ---------------------------------------------------------------- undo / redo and classes
def test_history_undo_redo_and_limit():
    label, inst = street()
    states = [EditState(label + step, inst, {}) for step in range(5)]
    history = History(states[0], limit=3)
    assert not history.can_undo and not history.can_redo
    for state in states[1:3]:
        history.push(state)
    assert history.undo() is states[1] and history.undo() is states[0]
    with pytest.raises(EditError, match='nothing to undo'):
        history.undo()
    assert history.redo() is states[1]
    history.push(states[3])  # a new edit after undo drops the undone future
    assert history.current is states[3] and not history.can_redo
    with pytest.raises(EditError, match='nothing to redo'):
        history.redo()
    history.push(states[4])
    assert [history.undo() for _ in range(3)] == [states[3], states[1], states[0]]
    assert not history.can_undo  # limit 3: the oldest states beyond it are gone
    history.push(states[2])
    history.push(states[3])
    history.push(states[4])
    history.push(states[1])
    assert [history.undo() for _ in range(3)] == [states[4], states[3], states[2]] and not history.can_undo


def test_class_names_and_object_classes():
    assert editing.class_names(35)[CAR] == 'car' and editing.class_names(35)[BUILDING] == 'building'
    assert editing.class_names(4) == ['class 0', 'class 1', 'class 2', 'class 3']
    label, inst = street()
    assert editing.object_classes(35, inst) == editing.CITYSCAPES_OBJECT_CLASSES
    inst[0, 0] = 3001
    assert editing.object_classes(10, inst) == {3, CAR}  # other label sets: the classes that have objects
    assert editing.check_class(34, 35) == 34
    with pytest.raises(EditError, match='--label_nc 35'):
        editing.check_class(35, 35)


# ---------------------------------------------------------------- the model thread and the sessions
def test_renderer_coalesces_edits_so_the_newest_wins_and_serves_sessions_in_turn():
    from web_editor.render import CoalescingRenderer, RenderError

    rendered, rendering, release = [], threading.Event(), threading.Event()

    def render(state):
        rendering.set()
        assert release.wait(timeout=30)  # the first render lasts until every edit below is submitted
        rendered.append(state)
        if state == 'bad':
            raise ValueError('broken map')
        return f'image of {state}'

    renderer = CoalescingRenderer(render).start()
    try:
        renderer.submit('a', 1, 'a1')
        assert rendering.wait(timeout=30)  # the model thread is busy with a1
        for version in range(2, 21):
            renderer.submit('a', version, f'a{version}')
        renderer.submit('b', 1, 'b1')
        renderer.submit('a', 21, 'a21')  # replaces a's waiting version; a keeps its place before b
        release.set()
        version, output, seconds = renderer.result('a', 21, timeout=30)
        assert (version, output) == (21, 'image of a21') and seconds > 0
        assert renderer.result('b', 1, timeout=30)[:2] == (1, 'image of b1')
        assert rendered == ['a1', 'a21', 'b1']  # 21 edits of a: two generator runs; b in its turn
        # a side job (a swatch) runs on the model thread and returns its result
        assert renderer.run_job(lambda: threading.current_thread().name, timeout=30) == 'editor-render'
        renderer.submit('a', 22, 'bad')
        with pytest.raises(RenderError, match='broken map'):
            renderer.result('a', 22, timeout=30)
        renderer.submit('a', 23, 'a23')  # the thread survives a failed render
        assert renderer.result('a', 23, timeout=30)[1] == 'image of a23'
        renderer.forget('b')  # a closed session: its requests are told so
        with pytest.raises(RenderError, match='closed'):
            renderer.result('b', 1, timeout=30)
        with pytest.raises(TimeoutError):
            renderer.result('a', 24, timeout=0.2)  # never submitted
    finally:
        renderer.stop()


def test_history_keeps_undo_within_a_memory_budget():
    label, inst = street()
    step = label.nbytes + inst.nbytes
    history = History(EditState(label, inst), max_bytes=3 * step)
    assert [history.push(EditState(label.copy(), inst.copy())) for _ in range(4)] == [0, 0, 1, 1]
    assert history.undo_steps == 2 and history.nbytes == 3 * step
    # a style choice shares the maps of the state before it: counted once, nothing goes
    assert history.push(EditState(history.current.label, history.current.inst, {26000: 1})) == 0
    assert history.undo_steps == 3 and history.nbytes == 3 * step


def test_sessions_are_capped_and_let_go_when_idle():
    import argparse

    from web_editor.app import EditorApp, SessionGone, TooManySessions

    now = [0.0]
    opt = argparse.Namespace(
        use_features=False,
        label_feat=False,
        feat_choice='',
        relabel='',
        label_nc=35,
        max_upload_mb=1,
        max_session_mb=1,
        seed=0,
        max_sessions=2,
        session_idle_minutes=10,
    )
    app = EditorApp(opt, None, None, None, clock=lambda: now[0])  # no model: nothing is rendered here
    try:
        first, second = app.new_session(), app.new_session()
        with pytest.raises(TooManySessions, match='--max_sessions'):
            app.new_session()
        now[0] = 9 * 60
        assert app.session(first).key == first  # used now: its idle time starts again
        now[0] = 10 * 60 + 1  # the second has been idle for more than 10 minutes: its place is free
        third = app.new_session()
        with pytest.raises(SessionGone, match='idle for more than 10 minutes'):
            app.session(second)
        assert app.session(first).key == first and app.session(third).key == third
        app.close_session(third)
        with pytest.raises(SessionGone, match='reload the page'):
            app.session(third)
        with pytest.raises(SessionGone, match='no editor session'):
            app.session(None)
    finally:
        app.close()
