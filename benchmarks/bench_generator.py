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
- FID and KID against the held-out stimuli with the offline extractor (the
  shipped tiny CLIP's image embedding, not Inception: the values compare rows
  of this table only), Inception Score under the judge, CLIP similarity, SSIM
  and pixel correlation with each epoch's stimulus, permutation p-values;
- Stage-1 scores of the same encoder on the test epochs (decoding,
  EEG -> image retrieval, latent nearest-neighbour class agreement);
- speed: Stage-1 fit time per epoch, finetuning time per step, peak memory of
  each stage, ``generate()`` time per image next to a bare diffusers pipeline
  call with the same U-Net, context and steps;
- trainable parameters of each recipe on the SD 2.1 / 1.5 architectures, next
  to the numbers the papers report.

Run ``python benchmarks/bench_generator.py`` (``--quick`` for fewer steps).
"""

import argparse
import re
import time

import numpy as np

PAPER_COUNTS = {"SYNAPSE (README)": 152.69, "DreamDiffusion": 210, "BrainVis": 195, "GWIT": 368}
FEATURES = "tiny-CLIP image embedding (shipped, 64-d)"
N_PERMUTATIONS = 1000


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


def _fresh_draws(labels, n_classes, seed=7):
    """New real stimuli of the given classes (none of them seen in training)."""
    from mne_synapse.datasets import _drawing

    rng = np.random.default_rng(seed)
    return np.stack([_drawing.draw_image(_drawing.sample_image_params(k, n_classes, rng))
                     for k in labels])


class _PeakMemory:
    """Peak memory of one stage, in MB.

    CPU: the resident set's high-water mark (Linux ``VmHWM``, reset per stage
    through ``/proc/self/clear_refs``; elsewhere ``ru_maxrss``, the peak of the
    whole process). CUDA: ``torch.cuda.max_memory_allocated``.
    """

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        self.per_stage = True

    def reset(self):
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            with open("/proc/self/clear_refs", "w") as fid:
                fid.write("5")
        except OSError:
            self.per_stage = False

    def peak(self):
        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        try:
            with open("/proc/self/status") as fid:
                if self.per_stage:
                    return int(re.search(r"VmHWM:\s+(\d+)", fid.read()).group(1)) / 1024
        except (OSError, AttributeError):
            self.per_stage = False
        import resource
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024

    @property
    def label(self):
        if self.cuda:
            return "peak CUDA memory allocated (MB)"
        return ("peak resident memory of the process (MB)"
                + (" during the stage" if self.per_stage else " so far"))


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


def _quality_rows(sets, stimuli, judge, reference, clip, n_classes):
    """n-way accuracy, FID, KID, IS and paired similarities of each image set."""
    from mne_synapse import metrics

    rows = []
    for name, images in sets:
        proba = judge(images)
        n_way = [metrics.n_way_top_k(proba, reference, n, random_state=1)
                 for n in (n_classes, 5, 2)]
        fid = metrics.fid(stimuli, images, clip.embed_images, name=FEATURES)
        kid = metrics.kid(stimuli, images, clip.embed_images, name=FEATURES, subset_size=100,
                          random_state=0)
        inception = metrics.inception_score(images, judge, name="judge", random_state=0)
        similarity = metrics.clip_similarity(images, stimuli, clip.embed_images, name=FEATURES)
        assert fid.extractor == kid.extractor == similarity.extractor == FEATURES
        rows.append([name, *(f"{s:.3f}" for s in n_way), f"{fid.value:.4f}",
                     f"{1e3 * kid.value:.2f}", f"{inception.value:.2f}",
                     f"{similarity.value:.3f}", f"{metrics.ssim(images, stimuli):.3f}",
                     f"{metrics.pixel_correlation(images, stimuli):.3f}"])
    return rows


def _stage1_rows(encoder, epochs, train, test, md, clip, images):
    """Decoding, retrieval and latent neighbour agreement, each with chance, shuffle and p."""
    from sklearn.linear_model import LogisticRegression

    from mne_synapse import metrics

    labels = md.label.to_numpy()
    z_train, z_test = encoder.transform(epochs[train]), encoder.transform(epochs[test])
    proba = LogisticRegression(max_iter=1000).fit(z_train, labels[train]).predict_proba(z_test)
    image_ids = md.image_id.to_numpy()[test]
    candidates, truth = np.unique(image_ids, return_inverse=True)
    first = np.unique(image_ids, return_index=True)[1]
    candidate_emb = clip.embed_images(list(images[first]))
    scores = {
        "decoding top-1 (LR on pooled latent)": (
            lambda p, y: metrics.decoding_accuracy(y, p), proba, labels[test]),
        f"EEG -> image retrieval top-1 ({len(candidates)} images)": (
            lambda z, t: metrics.retrieval_top_k(z, candidate_emb, t, k=1), z_test, truth),
        f"EEG -> image retrieval top-5 ({len(candidates)} images)": (
            lambda z, t: metrics.retrieval_top_k(z, candidate_emb, t, k=5), z_test, truth),
        "5-NN class agreement (other images only)": (
            lambda z, y: metrics.neighbour_agreement(z, y, 5, groups=image_ids),
            z_test, labels[test]),
    }
    rows = []
    for name, (fn, a, b) in scores.items():
        score = fn(a, b)
        shuffled = metrics.shuffled_control(fn, a, b, n_permutations=10, random_state=0)
        n_perm = 200 if "NN" in name else N_PERMUTATIONS
        p = metrics.permutation_pvalue(fn, a, b, n_permutations=n_perm, random_state=0)[1]
        rows.append((name, score.value, score.chance, shuffled, p, n_perm))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="finetuning steps")
    parser.add_argument("--inference-steps", type=int, default=25)
    parser.add_argument("--encoder-epochs", type=int, default=None,
                        help="Stage-1 epochs (default: SynapseEncoder's; 15 with --quick)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)

    import mne
    import torch

    from mne_synapse import SynapseEncoder, metrics
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import make_synthetic
    from mne_synapse.generator import EEGImageGenerator
    from mne_synapse.miniature.tiny_sd import build_tiny_sd, build_tiny_sd_pipeline

    mne.set_log_level("WARNING")
    data = make_synthetic()
    epochs, md = data.epochs, data.epochs.metadata
    train = np.flatnonzero(md.split != "test")
    test = np.flatnonzero(md.split == "test")
    n_classes = md.label.nunique()
    steps = args.steps or (150 if args.quick else 600)
    memory, peaks = _PeakMemory(args.device), {}

    memory.reset()
    start = time.perf_counter()
    encoder = SynapseEncoder(random_state=0, device=args.device, verbose=False)
    if args.encoder_epochs or args.quick:
        encoder.set_params(max_epochs=args.encoder_epochs or 15)
    encoder.fit(epochs[train])
    encoder_time = time.perf_counter() - start
    peaks["Stage-1 fit (SynapseEncoder)"] = memory.peak()
    memory.reset()
    start = time.perf_counter()
    gen = EEGImageGenerator(encoder=encoder, max_steps=steps, batch_size=16, random_state=0,
                            device=args.device, verbose=False).fit(epochs[train])
    generator_time = time.perf_counter() - start
    peaks["Stage-2 finetuning (EEGImageGenerator)"] = memory.peak()

    judge = _judge(n_classes)
    clip = CLIPEmbedder("tiny", "synthetic")
    rng = np.random.default_rng(0)
    stimuli = data.images[md.image_index.to_numpy()[test]]
    reference = judge(stimuli).argmax(1)  # the classifier's label of the real stimulus
    real_accuracy = np.mean(reference == md.label.to_numpy()[test])

    kw = dict(num_inference_steps=args.inference_steps, random_state=0, output_type="np")
    memory.reset()
    start = time.perf_counter()
    generated = gen.generate(epochs[test], **kw)[:, 0]
    generate_time = time.perf_counter() - start
    peaks[f"generate() of {len(test)} images"] = memory.peak()
    shuffled = gen.generate(epochs[test[rng.permutation(len(test))]], **kw)[:, 0]

    # Class-conditioned oracle: the frozen base model prompted with the true class.
    vae, unet, scheduler = build_tiny_sd("synthetic")
    pipe = build_tiny_sd_pipeline(vae, unet, scheduler).to(args.device)
    names = data.class_names
    prompts = [f"a {names[k]} at the centre on a dark background" for k in md.label.to_numpy()[test]]
    context = torch.as_tensor(clip.embed_caption_tokens(prompts), device=args.device)
    oracle = pipe(prompt_embeds=context, negative_prompt_embeds=torch.zeros_like(context),
                  num_inference_steps=args.inference_steps, guidance_scale=gen.guidance_scale,
                  height=32, width=32, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    oracle = np.round(oracle * 255).astype(np.uint8)
    fresh = _fresh_draws(md.label.to_numpy()[test], n_classes)

    print("# Stage 2 benchmark: synthetic data set, miniature world (tiny CLIP + tiny SD)")
    print(f"{len(train)} training epochs, {len(test)} test epochs on {len(np.unique(md.image_id.iloc[test]))} "
          f"held-out images; encoder fit {encoder_time:.0f} s, generator finetune "
          f"{steps} steps x batch 16 {generator_time:.0f} s; DDIM {args.inference_steps} steps, "
          f"guidance {gen.guidance_scale}. Judge: logistic regression on tiny-CLIP "
          f"embeddings of real stimuli (labels the real test stimuli right {real_accuracy:.3f}).\n")
    print(f"FID / KID extractor: {FEATURES} (not Inception-v3: compare rows of this table "
          "only), against the stimuli of the test epochs; KID x 1e3 (subsets of 100). "
          "IS under the judge (max "
          f"{n_classes}). CLIP similarity ({FEATURES}), SSIM and pixel correlation: each "
          "image against its epoch's stimulus.\n")
    sets = [("EEG -> generated (SYNAPSE)", generated), ("class-conditioned oracle", oracle),
            ("shuffled-EEG control", shuffled),
            ("real: fresh drawings of the same classes", fresh)]
    print(f"| images | {n_classes}-way top-1 | 5-way top-1 | 2-way top-1 | FID | KID x1e3 | IS "
          "| CLIP similarity | SSIM | pixel r |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in _quality_rows(sets, stimuli, judge, reference, clip, n_classes):
        print("| " + " | ".join(row) + " |")
    # Chance of the paired scores: the generated images against permuted stimuli.
    emb_gen, emb_stim = clip.embed_images(list(generated)), clip.embed_images(list(stimuli))

    def cosine(a, b):
        return np.mean(np.sum(a * b, axis=1))

    chance_paired = [
        metrics.shuffled_control(cosine, emb_gen, emb_stim, 100, random_state=0),
        metrics.shuffled_control(metrics.ssim, generated, stimuli, 3, random_state=0),
        metrics.shuffled_control(metrics.pixel_correlation, generated, stimuli, 3, random_state=0),
    ]
    print(f"| chance (permuted pairing) | {1 / n_classes:.3f} | 0.200 | 0.500 | | | | "
          + " | ".join(f"{c:.3f}" for c in chance_paired) + " |")
    proba = judge(generated)

    def top1(p, ref):
        return np.mean(p.argmax(1) == ref)

    p_acc = metrics.permutation_pvalue(top1, proba, reference, N_PERMUTATIONS, random_state=0)[1]
    p_clip = metrics.permutation_pvalue(cosine, emb_gen, emb_stim, N_PERMUTATIONS,
                                        random_state=0)[1]
    ours, best = top1(proba, reference), top1(judge(oracle), reference)
    # A reference point, not a bound: one logistic regression on the simulation's
    # source amplitudes, trained on the same epochs as the encoder.
    lr_reference = data.source_lr_reference(train, test)
    print(f"\nTarget: {n_classes}-way top-1 >= 0.9 x oracle = {0.9 * best:.3f} and >= 4 x "
          f"chance = {4 / n_classes:.3f}. SYNAPSE: {ours:.3f} = {ours / best:.2f} x oracle, "
          f"{ours * n_classes:.1f} x chance. LR reference at this training size (a logistic "
          f"regression on the simulation's source amplitudes; not a bound): {lr_reference:.3f}.")
    print(f"\nSYNAPSE against permuted EEG-stimulus pairings ({N_PERMUTATIONS} permutations): "
          f"{n_classes}-way top-1 p = {p_acc:.4f}, CLIP similarity p = {p_clip:.4f}. "
          "FID and KID compare image distributions and ignore the pairing: the shuffled "
          "control samples SYNAPSE's distribution by construction, and a class-faithful but "
          "less varied set can score worse than a varied one.")

    print("\n| Stage-1 score of this encoder (test epochs) | value | chance | shuffled control "
          "| permutation p |")
    print("|---|---|---|---|---|")
    for name, value, chance, shuffle, p, n_perm in _stage1_rows(encoder, epochs, train, test,
                                                                md, clip, stimuli):
        print(f"| {name} | {value:.3f} | {chance:.3f} | {shuffle:.3f} | {p:.4f} ({n_perm}) |")

    # generate() overhead: the same U-Net, context, steps, batch, through a bare pipeline.
    batch = epochs[test[:16]]
    z = encoder.latent(batch)
    ctx, negative = (c.detach() for c in gen._contexts(z, torch))
    bare = gen._get_pipeline()
    timings = {"EEGImageGenerator.generate": [], "bare diffusers pipeline": []}
    for _ in range(3):
        t0 = time.perf_counter()
        gen.generate(batch, num_inference_steps=args.inference_steps, random_state=0)
        timings["EEGImageGenerator.generate"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.no_grad():
            bare(prompt_embeds=ctx, negative_prompt_embeds=negative,
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

    durations = encoder.history_[:, "dur"]
    n_threads = torch.get_num_threads()
    device = (args.device if args.device != "cpu"
              else f"CPU, {n_threads} torch thread{'s' * (n_threads != 1)}")
    print(f"\n| speed ({device}) | time | {memory.label} |")
    print("|---|---|---|")
    print(f"| Stage-1 fit (SynapseEncoder, {len(train)} epochs of EEG, batch "
          f"{encoder.batch_size}) | {np.mean(durations):.2f} s per training epoch "
          f"({len(durations)} epochs, {encoder_time:.0f} s with CLIP targets) "
          f"| {peaks['Stage-1 fit (SynapseEncoder)']:.0f} |")
    print(f"| Stage-2 finetuning (EEGImageGenerator, batch 16) | "
          f"{1000 * generator_time / steps:.0f} ms per step ({steps} steps) "
          f"| {peaks['Stage-2 finetuning (EEGImageGenerator)']:.0f} |")
    print(f"| generate() of {len(test)} images, DDIM {args.inference_steps} steps, batch 16 | "
          f"{1000 * generate_time / len(test):.1f} ms per image "
          f"| {peaks[f'generate() of {len(test)} images']:.0f} |")

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
