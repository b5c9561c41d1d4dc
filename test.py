"""Synthesize images from label maps with a trained model (pix2pixHD, pix2pix or CRN); write
results/<name>/<phase>_<epoch>/index.html."""

import os
import shutil

from builders import build_data, build_model
from models import METHODS
from models.common.labels import check_relabel, parse_int_pairs
from models.common.precision import inference_precision
from options.base_options import check_writable
from options.test_options import TestOptions
from util.cli import run_main
from util.files import publish_folder, recover_folder, staging_path
from util.html import HTML
from util.seeding import seed_everything
from util.visualizer import Visualizer


def main() -> None:
    """Run the generator over the test set and write the results page (or export it with --export_onnx)."""
    opt = TestOptions(
        'Synthesize images from the label maps of <dataroot>/<phase>_label with a trained model'
        '; writes <results_dir>/<name>/<phase>_<which_epoch>/index.html.',
        METHODS,
    ).parse()
    if opt.export_onnx:
        from models.common.onnx_export import check_onnx_available

        check_onnx_available(opt.export_onnx)
        check_writable(os.path.dirname(os.path.abspath(opt.export_onnx)), '--export_onnx')
    check_relabel(parse_int_pairs(opt.relabel, '--relabel'), opt.label_nc)  # refused before anything runs
    method = METHODS[opt.model]
    if opt.seed is not None:  # every draw at test time: styles, pix2pix's dropout, a method's noise
        seed_everything(opt.seed)
    dataset, data_loader = build_data(opt)
    photos = getattr(dataset, 'B_paths', None)  # the aligned dataset's real photos, when the test set has them
    if photos and not opt.export_onnx:
        print(f'Showing the real photos of {os.path.dirname(photos[0])} beside the results')
    model = build_model(opt)
    if opt.export_onnx:
        from models.common.onnx_export import export_generator

        export_generator(model, next(iter(data_loader)), opt.export_onnx, opt.size_base, opt.reads_photos)
        return
    visualizer = Visualizer(opt)
    web_dir = os.path.join(opt.results_dir, opt.name, f'{opt.phase}_{opt.which_epoch}')
    check_writable(os.path.dirname(web_dir), '--results_dir')
    recover_folder(web_dir)
    # The page is built in a staging folder and put in place whole at the end: an earlier page stays as it
    # was until then, and an interrupted run never leaves a page mixing two runs' images.
    staging = staging_path(web_dir)
    webpage = HTML(staging, f'Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.which_epoch}')
    limit = min(opt.how_many, opt.ntest)
    try:
        with inference_precision(opt, model.device):
            for i, data in enumerate(data_loader):
                if i >= limit:
                    break
                visuals = method.test_visuals(opt, model, data)
                print(f'process image... {data["path"][0]}')
                visualizer.save_images(webpage, visuals, data['path'][0])
        webpage.save()
        publish_folder(staging, web_dir)
    except BaseException:  # a failure or Ctrl-C: the previous page stays, the half-built one goes
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f'Results page: {os.path.join(web_dir, "index.html")}')


if __name__ == '__main__':
    run_main(main)
