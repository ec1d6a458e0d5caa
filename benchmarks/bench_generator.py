"""Stage 2 benchmark: do generated images show the class that was seen?

On the synthetic data set (miniature world: tiny CLIP + tiny SD shipped with
the package), in one run:

- fit ``SynapseEncoder`` and ``EEGImageGenerator`` on the train/val images;
- generate one image per held-out (``test``) epoch, and judge it with a
  classifier trained on *real* stimuli only (logistic regression on tiny-CLIP
  image embeddings of freshly drawn stimuli);
- n-way top-1 accuracy (DreamDiffusion / GWIT protocol: the reference label is
  the classifier's label of the real stimulus; the generated image succeeds if
  that label ranks first among itself and n-1 random other classes);
- next to a class-conditioned oracle (the base model prompted with the true
  class's caption), a shuffled-EEG control (EEG of other test epochs) and chance;
- trainable parameters of each recipe on the SD 2.1 / 1.5 architectures, next
  to the numbers the papers report;
- ``generate()`` time per image next to a bare diffusers pipeline call with the
  same U-Net, context and steps.

Run ``python benchmarks/bench_generator.py`` (``--quick`` for fewer steps).
"""

import argparse
import time

import numpy as np

PAPER_COUNTS = {"SYNAPSE (README)": 152.69, "DreamDiffusion": 210, "BrainVis": 195, "GWIT": 368}


def _judge(n_classes, seed=0, n_per_class=60):
    """Classifier of the world's classes trained on real (drawn) stimuli only."""
    from sklearn.linear_model import LogisticRegression

    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import _drawing

    rng = np.random.default_rng(seed + 1000)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = [_drawing.draw_image(_drawing.sample_image_params(k, n_classes, rng)) for k in labels]
    clip = CLIPEmbedder("tiny", "synthetic")
    clf = LogisticRegression(max_iter=2000).fit(clip.embed_images(images), labels)
    return lambda ims: clf.predict_proba(clip.embed_images(list(ims)))


def _recipe_table():
    from diffusers import UNet2DConditionModel

    from mne_synapse.models import (EEGAdapter, RECIPES, count_parameters, count_recipe,
                                    install_eeg_processors, load_unet_config)

    rows = []
    for name in ("sd21", "sd15"):
        unet = UNet2DConditionModel.from_config(load_unet_config(name))
        total = count_parameters(unet, trainable_only=False)
        install_eeg_processors(unet)
        dim = unet.config.cross_attention_dim
        adapter = count_parameters(EEGAdapter(dim, dim))
        for recipe in sorted(RECIPES):
            n = count_recipe(unet, recipe) + adapter
            rows.append((name, recipe, n / 1e6, 100 * n / total))
        del unet
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="finetuning steps")
    parser.add_argument("--inference-steps", type=int, default=25)
    args = parser.parse_args(argv)

    import mne
    import torch

    from mne_synapse import SynapseEncoder
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import make_synthetic
    from mne_synapse.generator import EEGImageGenerator
    from mne_synapse.metrics import n_way_top_k
    from mne_synapse.tiny_sd import build_tiny_sd, build_tiny_sd_pipeline

    mne.set_log_level("WARNING")
    data = make_synthetic()
    epochs, md = data.epochs, data.epochs.metadata
    train = np.flatnonzero(md.split != "test")
    test = np.flatnonzero(md.split == "test")
    n_classes = md.label.nunique()
    steps = args.steps or (150 if args.quick else 600)

    start = time.perf_counter()
    encoder = SynapseEncoder(random_state=0, verbose=False).fit(epochs[train])
    encoder_time = time.perf_counter() - start
    start = time.perf_counter()
    gen = EEGImageGenerator(encoder=encoder, max_steps=steps, batch_size=16, random_state=0,
                            verbose=False).fit(epochs[train])
    generator_time = time.perf_counter() - start

    judge = _judge(n_classes)
    rng = np.random.default_rng(0)
    stimuli = data.images[md.image_index.to_numpy()[test]]
    reference = judge(stimuli).argmax(1)  # the classifier's label of the real stimulus
    real_accuracy = np.mean(reference == md.label.to_numpy()[test])

    kw = dict(num_inference_steps=args.inference_steps, random_state=0, output_type="np")
    start = time.perf_counter()
    generated = gen.generate(epochs[test], **kw)[:, 0]
    generate_time = (time.perf_counter() - start) / len(test)
    shuffled = gen.generate(epochs[test[rng.permutation(len(test))]], **kw)[:, 0]

    # Class-conditioned oracle: the frozen base model prompted with the true class.
    vae, unet, scheduler = build_tiny_sd("synthetic")
    pipe = build_tiny_sd_pipeline(vae, unet, scheduler)
    pipe.set_progress_bar_config(disable=True)
    names = data.class_names
    prompts = [f"a {names[k]} at the centre on a dark background" for k in md.label.to_numpy()[test]]
    context = torch.as_tensor(CLIPEmbedder("tiny", "synthetic").embed_caption_tokens(prompts))
    oracle = pipe(prompt_embeds=context, negative_prompt_embeds=torch.zeros_like(context),
                  num_inference_steps=args.inference_steps, guidance_scale=gen.guidance_scale,
                  height=32, width=32, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    oracle = np.round(oracle * 255).astype(np.uint8)

    print("# Stage 2 benchmark: synthetic data set, miniature world (tiny CLIP + tiny SD)")
    print(f"{len(train)} training epochs, {len(test)} test epochs on {len(np.unique(md.image_id.iloc[test]))} "
          f"held-out images; encoder fit {encoder_time:.0f} s, generator finetune "
          f"{steps} steps x batch 16 {generator_time:.0f} s; DDIM {args.inference_steps} steps, "
          f"guidance {gen.guidance_scale}. Judge: logistic regression on tiny-CLIP "
          f"embeddings of real stimuli (labels the real test stimuli right {real_accuracy:.3f}).\n")
    print("| images | 10-way top-1 | 5-way top-1 | 2-way top-1 |")
    print("|---|---|---|---|")
    for name, images in [("EEG -> generated (SYNAPSE)", generated),
                         ("class-conditioned oracle", oracle),
                         ("shuffled-EEG control", shuffled)]:
        proba = judge(images)
        scores = [n_way_top_k(proba, reference, n, random_state=1) for n in (n_classes, 5, 2)]
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
    print(f"| chance | {1 / n_classes:.3f} | 0.200 | 0.500 |")

    # generate() overhead: the same U-Net, context, steps, batch, through a bare pipeline.
    batch = epochs[test[:16]]
    z = encoder.latent(batch)
    ctx = gen._context(z, torch).detach()
    bare = gen._get_pipeline()
    timings = {"EEGImageGenerator.generate": [], "bare diffusers pipeline": []}
    for _ in range(3):
        t0 = time.perf_counter()
        gen.generate(batch, num_inference_steps=args.inference_steps, random_state=0)
        timings["EEGImageGenerator.generate"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.no_grad():
            bare(prompt_embeds=ctx, negative_prompt_embeds=torch.zeros_like(ctx),
                 num_inference_steps=args.inference_steps, guidance_scale=gen.guidance_scale,
                 height=32, width=32, generator=torch.Generator().manual_seed(0))
        timings["bare diffusers pipeline"].append(time.perf_counter() - t0)
    print("\n| sampling 16 images, DDIM steps as above (best of 3) | seconds | per image (ms) |")
    print("|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {min(values):.3f} | {1000 * min(values) / 16:.1f} |")
    ratio = min(timings["EEGImageGenerator.generate"]) / min(timings["bare diffusers pipeline"])
    print(f"overhead of generate(): {100 * (ratio - 1):+.1f}% (encoder + adapter + "
          "uint8 conversion included)")

    print(f"\nTrainable parameters (miniature world, recipe '{gen.recipe}'): "
          f"{gen.n_trainable_params_:,} = {100 * gen.trainable_fraction_:.1f}% of the tiny U-Net")
    print("\n| architecture | recipe | trainable (M, incl. adapter) | % of U-Net |")
    print("|---|---|---|---|")
    for name, recipe, n, pct in _recipe_table():
        print(f"| {name} | {recipe} | {n:.2f} | {pct:.1f} |")
    for name, n in PAPER_COUNTS.items():
        print(f"| reported | {name} | {n:.2f} | |")


if __name__ == "__main__":
    main()
