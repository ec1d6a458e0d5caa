"""Stage 2 benchmark: do generated images show the class that was seen?

On two simulated worlds (``make_synthetic(neural_code='erp' | 'induced')``),
three seeds each (a fresh world and fresh model seeds), in the miniature world
(tiny CLIP + tiny SD shipped with the package):

- fit ``SynapseEncoder`` and ``EEGImageGenerator`` on the train/val images;
- generate one image per held-out (``test``) epoch, and judge it with a
  classifier trained on *real* stimuli only (logistic regression on tiny-CLIP
  image embeddings of freshly drawn stimuli);
- n-way top-1 accuracy (DreamDiffusion / GWIT protocol: the reference label is
  the judge's label of the real stimulus; the generated image succeeds if that
  label ranks first among itself and n-1 random other classes; here in
  expectation over the draws), CLIP similarity, SSIM and pixel correlation
  with each epoch's stimulus: mean over seeds, 95% bootstrap interval over
  test images;
- FID and KID against the held-out stimuli with the offline extractor (the
  shipped tiny CLIP's image embedding, not Inception: the values compare rows
  of this table only) and the Inception Score under the judge: set-level
  scores, mean over seeds with the range over seeds;
- next to a class-conditioned oracle (the base model prompted with the true
  class's caption), a shuffled-EEG control (EEG of other test epochs), real
  fresh drawings of the same classes, and chance;
- on the ERP world's seed 0: speed (Stage-1 fit per epoch, finetuning per
  step, peak memory of each stage, ``generate()`` next to a bare diffusers
  pipeline with the same U-Net, context and steps) and the trainable
  parameters of each recipe on the SD 2.1 / 1.5 architectures, next to the
  numbers the papers report.

Run ``python benchmarks/bench_generator.py`` (``--quick``: fewer finetuning
steps, the first repetition of each test image).
"""

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._protocol import WORLDS, Store, encoder_defaults, interval, load_world  # noqa: E402

PAPER_COUNTS = {"SYNAPSE (README)": 152.69, "DreamDiffusion": 210, "BrainVis": 195, "GWIT": 368}
FEATURES = "tiny-CLIP image embedding (shipped, 64-d)"
SET_LEVEL = ("FID", "KID x1e3", "IS")


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


def _n_way_hits(proba, reference, n_way):
    """Chance, per image, that the reference class ranks first among itself and
    ``n_way - 1`` random other classes (the expectation of ``metrics.n_way_top_k``)."""
    from scipy.special import comb

    n_classes = proba.shape[1]
    above = np.sum(proba > proba[np.arange(len(proba)), reference][:, None], axis=1)
    return comb(n_classes - 1 - above, n_way - 1) / comb(n_classes - 1, n_way - 1)


def _paired_names(n_classes):
    return (f"{n_classes}-way top-1", "5-way top-1", "2-way top-1", "CLIP similarity", "SSIM",
            "pixel r")


def _paired(images, stimuli, judge, reference, clip, n_classes):
    """Scores of each image against its stimulus (lists, one value per image)."""
    from mne_synapse import metrics

    proba = judge(images)
    a, b = clip.embed_images(list(images)), clip.embed_images(list(stimuli))
    cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    paired = {
        _paired_names(n_classes)[0]: _n_way_hits(proba, reference, n_classes),
        "5-way top-1": _n_way_hits(proba, reference, 5),
        "2-way top-1": _n_way_hits(proba, reference, 2),
        "CLIP similarity": cosine,
        "SSIM": np.array([metrics.ssim(g[None], s[None]) for g, s in zip(images, stimuli)]),
        "pixel r": np.array([metrics.pixel_correlation(g[None], s[None])
                             for g, s in zip(images, stimuli)]),
    }
    return {k: v.tolist() for k, v in paired.items()}


def _scores(images, stimuli, judge, reference, clip, n_classes):
    """Per-image paired scores and set-level scores of one image set."""
    from mne_synapse import metrics

    set_level = {
        "FID": metrics.fid(stimuli, images, clip.embed_images, name=FEATURES).value,
        "KID x1e3": 1e3 * metrics.kid(stimuli, images, clip.embed_images, name=FEATURES,
                                      subset_size=min(100, len(images)),
                                      random_state=0).value,
        "IS": metrics.inception_score(images, judge, name="judge", random_state=0).value,
    }
    return _paired(images, stimuli, judge, reference, clip, n_classes), set_level


def _world_seed(code, seed, args, memory=None, keep=None):
    """One world and seed: fit both stages, generate every image set, score them.

    Returns what the tables need (JSON); the fitted generator goes into ``keep``
    (and, with ``--cache-dir``, into a folder there) when it is given.
    """
    import torch

    from mne_synapse import SynapseEncoder
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.generator import EEGImageGenerator
    from mne_synapse.miniature.tiny_sd import build_tiny_sd, build_tiny_sd_pipeline

    data = load_world(code, seed)
    epochs, md = data.epochs, data.epochs.metadata
    train = np.flatnonzero(md.split != "test")
    test = np.flatnonzero((md.split == "test") & ((md.repetition == 0) | (not args.quick)))
    n_classes = md.label.nunique()
    out = dict(peaks={}, times={})
    if memory:
        memory.reset()
    start = time.perf_counter()
    encoder = SynapseEncoder(max_epochs=args.encoder_epochs, random_state=seed,
                             device=args.device, verbose=False).fit(epochs[train])
    out["times"]["encoder"] = time.perf_counter() - start
    if memory:
        out["peaks"]["Stage-1 fit (SynapseEncoder)"] = memory.peak()
        memory.reset()
    start = time.perf_counter()
    gen = EEGImageGenerator(encoder=encoder, max_steps=args.steps, batch_size=16,
                            random_state=seed, device=args.device, verbose=False)
    gen.fit(epochs[train])
    out["times"]["generator"] = time.perf_counter() - start
    if memory:
        out["peaks"]["Stage-2 finetuning (EEGImageGenerator)"] = memory.peak()

    judge = _judge(n_classes, seed)
    clip = CLIPEmbedder("tiny", "synthetic")
    stimuli = data.images[md.image_index.to_numpy()[test]]
    reference = judge(stimuli).argmax(1)  # the judge's label of the real stimulus
    out["judge on real stimuli"] = float(np.mean(reference == md.label.to_numpy()[test]))
    kw = dict(num_inference_steps=args.inference_steps, random_state=seed, output_type="np")
    if memory:
        memory.reset()
    start = time.perf_counter()
    generated = gen.generate(epochs[test], **kw)[:, 0]
    out["times"]["generate"] = time.perf_counter() - start
    if memory:
        out["peaks"]["generate()"] = memory.peak()
    order = np.random.default_rng(seed).permutation(len(test))
    shuffled = gen.generate(epochs[test[order]], **kw)[:, 0]
    # Class-conditioned oracle: the frozen base model prompted with the true class.
    vae, unet, scheduler = build_tiny_sd("synthetic")
    pipe = build_tiny_sd_pipeline(vae, unet, scheduler).to(args.device)
    prompts = [f"a {data.class_names[k]} at the centre on a dark background"
               for k in md.label.to_numpy()[test]]
    context = torch.as_tensor(clip.embed_caption_tokens(prompts), device=args.device)
    oracle = pipe(prompt_embeds=context, negative_prompt_embeds=torch.zeros_like(context),
                  num_inference_steps=args.inference_steps, guidance_scale=gen.guidance_scale,
                  height=32, width=32, generator=torch.Generator().manual_seed(seed),
                  output_type="np").images
    oracle = np.round(oracle * 255).astype(np.uint8)
    sets = {"EEG -> generated (SYNAPSE)": generated, "class-conditioned oracle": oracle,
            "shuffled-EEG control": shuffled,
            "real: fresh drawings of the same classes": _fresh_draws(md.label.to_numpy()[test],
                                                                     n_classes, seed + 7)}
    out["sets"] = {name: _scores(images, stimuli, judge, reference, clip, n_classes)
                   for name, images in sets.items()}
    # Chance of the paired scores: the generated images against permuted stimuli.
    out["chance"] = _paired(generated, stimuli[order], judge, reference[order], clip,
                            n_classes)
    out["n_classes"] = n_classes
    out["image"] = md.image_id.to_numpy()[test].tolist()
    out["lr_reference"] = data.source_lr_reference(train, test)
    out["n"] = (len(train), len(test), len(np.unique(md.image_id.to_numpy()[test])))
    out["engineering"] = dict(durations=list(encoder.history_[:, "dur"]),
                              batch_size=encoder.batch_size, recipe=gen.recipe,
                              n_trainable=int(gen.n_trainable_params_),
                              fraction=float(gen.trainable_fraction_))
    if keep is not None:
        keep["generator"] = gen
        if args.cache_dir:
            gen.save(_saved_generator(args, code, seed))
    return out


def _saved_generator(args, code, seed):
    return Path(args.cache_dir, f"generator-{code}-{seed}-{args.steps}-{args.encoder_epochs}")


def _paired_interval(runs, set_name, score):
    source = [dict(values=r["sets"][set_name][0][score], image=r["image"]) for r in runs]
    return interval(source, key="values")


def _engineering(run, gen, batch, args, memory):
    """Sampling overhead, speed and memory, trainable parameters (one run)."""
    import torch

    encoder, facts = gen.encoder_, run["engineering"]
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
    print(f"\n| sampling {len(batch)} images, DDIM {args.inference_steps} steps (best of 3) "
          "| seconds | per image (ms) |")
    print("|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {min(values):.3f} | {1000 * min(values) / len(batch):.1f} |")
    ratio = min(timings["EEGImageGenerator.generate"]) / min(timings["bare diffusers pipeline"])
    print(f"overhead of generate(): {100 * (ratio - 1):+.1f}% (encoder + adapter + "
          "uint8 conversion included)")

    durations = facts["durations"]
    n_threads = torch.get_num_threads()
    device = (args.device if args.device != "cpu"
              else f"CPU, {n_threads} torch thread{'s' * (n_threads != 1)}")
    peaks, times = run["peaks"], run["times"]
    n_train, n_test, _ = run["n"]
    print(f"\n| speed ({device}) | time | {memory.label} |")
    print("|---|---|---|")
    print(f"| Stage-1 fit (SynapseEncoder, {n_train} epochs of EEG, batch "
          f"{facts['batch_size']}) | {np.mean(durations):.2f} s per training epoch "
          f"({len(durations)} epochs, {times['encoder']:.0f} s with CLIP targets) "
          f"| {peaks['Stage-1 fit (SynapseEncoder)']:.0f} |")
    print(f"| Stage-2 finetuning (EEGImageGenerator, batch 16) | "
          f"{1000 * times['generator'] / args.steps:.0f} ms per step ({args.steps} steps) "
          f"| {peaks['Stage-2 finetuning (EEGImageGenerator)']:.0f} |")
    print(f"| generate() of {n_test} images, DDIM {args.inference_steps} steps, batch 16 | "
          f"{1000 * times['generate'] / n_test:.1f} ms per image | {peaks['generate()']:.0f} |")

    print(f"\nTrainable parameters (miniature world, recipe '{facts['recipe']}'): "
          f"{facts['n_trainable']:,} = {100 * facts['fraction']:.1f}% of the tiny U-Net")
    print("\n| architecture | recipe | trainable (M, incl. adapter) | % of U-Net |")
    print("|---|---|---|---|")
    for name, recipe, n, pct in _recipe_table():
        print(f"| {name} | {recipe} | {n:.2f} | {pct:.1f} |")
    for name, n in PAPER_COUNTS.items():
        print(f"| reported | {name} | {n:.2f} | |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worlds", default="erp,induced")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="finetuning steps")
    parser.add_argument("--inference-steps", type=int, default=25)
    parser.add_argument("--encoder-epochs", type=int, default=None,
                        help="Stage-1 epochs (default: 40; 15 with --quick)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--cache-dir", default=None,
                        help="keep each world and seed's scores here (resume a run)")
    args = parser.parse_args(argv)
    args.steps = args.steps or (150 if args.quick else 600)
    args.encoder_epochs = args.encoder_epochs or (15 if args.quick else 40)

    import mne

    mne.set_log_level("WARNING")
    worlds, seeds = args.worlds.split(","), list(range(args.seeds))
    memory, store, keep = _PeakMemory(args.device), Store(args.cache_dir), {}
    runs = {}
    for code in worlds:
        for seed in seeds:
            first = (code, seed) == (worlds[0], seeds[0])
            key = dict(step="generator", world=code, seed=seed, quick=args.quick,
                       steps=args.steps, inference_steps=args.inference_steps,
                       encoder_epochs=args.encoder_epochs, device=args.device,
                       encoder=encoder_defaults())
            runs[code, seed] = store.get(key, lambda: _world_seed(
                code, seed, args, memory if first else None, keep if first else None))
            print(f"[{code} seed {seed}] done", file=sys.stderr, flush=True)
    one = runs[worlds[0], seeds[0]]
    n_train, n_test, n_images = one["n"]
    n_classes = one["n_classes"]
    print("# Stage 2 benchmark: simulated worlds, miniature world (tiny CLIP + tiny SD)")
    print(f"Per world and seed: {n_train} training epochs, {n_test} test epochs on {n_images} "
          f"held-out images{' (first repetition only: --quick)' if args.quick else ''}; "
          f"encoder {args.encoder_epochs} epochs, generator finetune {args.steps} steps x "
          f"batch 16; DDIM {args.inference_steps} steps. Seeds {seeds}: data and models. "
          "Judge: logistic regression on tiny-CLIP embeddings of real stimuli (labels the "
          "real test stimuli right "
          f"{np.mean([r['judge on real stimuli'] for r in runs.values()]):.3f}).\n")
    print(f"Paired scores: mean over seeds [95% bootstrap interval over test images]. FID / "
          f"KID ({FEATURES}, not Inception-v3: compare rows of these tables only; against "
          "the test stimuli) and IS (under the judge, max "
          f"{n_classes}): set-level, mean over seeds [lowest, highest seed]. CLIP "
          "similarity, SSIM and pixel correlation: each image against its epoch's "
          "stimulus. FID and KID ignore the pairing: the shuffled control samples "
          "SYNAPSE's distribution by construction.\n")
    paired_names = _paired_names(n_classes)
    for code in worlds:
        world_runs = [runs[code, s] for s in seeds]
        print(f"### {WORLDS[code]}\n")
        print("| images | " + " | ".join(paired_names + SET_LEVEL) + " |")
        print("|---" * (1 + len(paired_names) + len(SET_LEVEL)) + "|")
        for set_name in world_runs[0]["sets"]:
            cells = []
            for score in paired_names:
                mean, low, high = _paired_interval(world_runs, set_name, score)
                cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
            for score in SET_LEVEL:
                values = [r["sets"][set_name][1][score] for r in world_runs]
                cells.append(f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]")
            print(f"| {set_name} | " + " | ".join(cells) + " |")
        chance = [interval([dict(values=r["chance"][s], image=r["image"]) for r in world_runs],
                           key="values")[0] for s in paired_names]
        print("| chance (permuted pairing) | " + " | ".join(
            [f"{c:.3f}" for c in chance] + [""] * len(SET_LEVEL)) + " |")
        ours = _paired_interval(world_runs, "EEG -> generated (SYNAPSE)", paired_names[0])[0]
        best = _paired_interval(world_runs, "class-conditioned oracle", paired_names[0])[0]
        reference = np.mean([r["lr_reference"] for r in world_runs])
        print(f"\nTarget: {paired_names[0]} >= 0.9 x oracle = {0.9 * best:.3f} and >= 4 x "
              f"chance = {4 / n_classes:.3f}. SYNAPSE: {ours:.3f} = {ours / best:.2f} x oracle, "
              f"{ours * n_classes:.1f} x chance. LR reference at this training size (a "
              "logistic regression on the simulation's source amplitudes of the test epochs; "
              f"a reference point, not a bound): {reference:.3f}.\n")
    print(f"Engineering figures ({worlds[0]} world, seed {seeds[0]}):")
    if "generator" not in keep:  # scores read from --cache-dir: the generator saved there
        from mne_synapse.generator import EEGImageGenerator

        keep["generator"] = EEGImageGenerator.load(_saved_generator(args, worlds[0], seeds[0]))
    epochs = load_world(worlds[0], seeds[0]).epochs
    md = epochs.metadata
    test = np.flatnonzero((md.split == "test") & ((md.repetition == 0) | (not args.quick)))
    batch = epochs[test[:16]]
    _engineering(one, keep["generator"], batch, args, memory)


if __name__ == "__main__":
    main()
