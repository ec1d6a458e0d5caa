"""Steps the verbs of the command line share: estimators from the configuration,
splits, progress bars, decoding and generation scores, the stimulus figure."""

import sys

from ._config import UsageError, apply_overrides, estimator_params, read_config

# Stage-2 settings of the demo; also the defaults of fit-generator, so that
# fit-encoder -> fit-generator reproduces the demo's model.
GENERATOR_DEFAULTS = dict(max_steps=600, batch_size=16)


def say(message):
    print(message, flush=True)


def progress_bar(args, total, desc, unit):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show_progress(args),
                file=sys.stderr)


def show_progress(args):
    # Bars redrawn in a log file (CI, nohup) would be thousands of lines.
    return not args.quiet and sys.stderr.isatty()


def config_of(args):
    return apply_overrides(read_config(args.config), args.set)


def validated(cls, params):
    """Build an estimator and check its parameters before any data is loaded."""
    try:
        estimator = cls(**params)
        estimator._validate_params()
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    return estimator


def make_encoder(args, config):
    from ..encoder import SynapseEncoder

    params = estimator_params(
        "encoder", config, SynapseEncoder,
        dict(random_state=args.random_state, verbose="warning"),
        dict(max_epochs=args.epochs, device=args.device))
    return validated(SynapseEncoder, params)


def make_generator(args, config, encoder):
    from ..generator import EEGImageGenerator

    # The generator's own progress bar (Stage 2 steps) follows its verbosity.
    params = estimator_params(
        "generator", config, EEGImageGenerator,
        dict(GENERATOR_DEFAULTS, random_state=args.random_state,
             verbose="info" if show_progress(args) else "warning"),
        dict(max_steps=args.steps, device=args.device,
             base_model=getattr(args, "base_model", None)))
    return validated(EEGImageGenerator, dict(params, encoder=encoder))


def split_rows(epochs, split):
    """Indices of the epochs of a split; ``'train'`` means train + val."""
    import numpy as np

    md = epochs.metadata
    if split == "train" and (md.split == "unassigned").all():
        print("warning: the data have no splits; training on every epoch (give [data] "
              "splits_fname to hold images out)", file=sys.stderr)
        return np.arange(len(md))
    names = ["train", "val"] if split == "train" else [split]
    rows = np.flatnonzero(md.split.isin(names))
    if not len(rows):
        raise ValueError(
            f"no epochs in split {split!r} (the data have {sorted(set(md.split))}); pass "
            "--split with one of those, add a 'split' column to your epochs' metadata, or "
            "for CVPR40 give [data] splits_fname = 'block_splits_by_image_all.pth'")
    return rows


def describe_data(epochs, train, test):
    md = epochs.metadata
    shared = set(md.image_id.iloc[train]) & set(md.image_id.iloc[test])
    disjoint = "image-disjoint" if not shared else f"{len(shared)} images in both!"
    # Own data may lack subjects or classes (see cli._data.read_epochs_file).
    subjects = f"{md.subject.nunique()} subjects" if "subject" in md else "no subject column"
    classes = f"{md.label.nunique()} classes, " if "label" in md else ""
    say(f"data: {len(md)} epochs, {subjects}, {classes}{md.image_id.nunique()} images "
        f"({len(train)} train / {len(test)} test epochs, {disjoint})")


def stimuli(epochs, rows, read=False):
    """Stimulus paths (or images) of some epochs, from ``metadata.image_path``."""
    from ..clip import read_image

    paths = epochs.metadata.image_path.iloc[rows]
    if paths.isna().any():
        raise FileNotFoundError("some epochs have no stimulus image; set [data] image_root "
                                "to the folder of the stimuli")
    return [read_image(p) for p in paths] if read else list(paths)


def fit_with_progress(args, encoder, epochs, train):
    from skorch.callbacks import Callback

    class EpochBar(Callback):
        def on_train_begin(self, net, **kwargs):
            self.bar_ = progress_bar(args, net.max_epochs, "stage 1 (encoder)", "epoch")

        def on_epoch_end(self, net, **kwargs):
            self.bar_.set_postfix(loss=f"{net.history[-1, 'train_loss']:.3f}", refresh=False)
            self.bar_.update()

        def on_train_end(self, net, **kwargs):
            self.bar_.close()

    extra = list(encoder.callbacks or [])
    encoder.set_params(callbacks=extra + [("progress", EpochBar())]).fit(epochs[train])
    # The bar is display, not model: the saved config holds only JSON values.
    return encoder.set_params(callbacks=extra or None)


def decoding_score(encoder, epochs, train, test):
    """Accuracy of a logistic regression on the encoder's embeddings, with chance."""
    from sklearn.linear_model import LogisticRegression

    from ..metrics import decoding_accuracy

    labels = epochs.metadata.label.to_numpy()
    clf = LogisticRegression(max_iter=2000).fit(encoder.transform(epochs[train]), labels[train])
    score = decoding_accuracy(labels[test], clf.predict_proba(encoder.transform(epochs[test])),
                              classes=clf.classes_)
    return score.value, score.chance


def generate_batches(generator, epochs, bar, random_state, n_images=1, batch_size=16, **kwargs):
    """Images (n_epochs, n_images, H, W, 3) generated batch by batch, updating ``bar``."""
    import numpy as np

    generator.set_params(verbose="warning")  # the CLI's bar replaces the per-batch ones
    out = []
    for start in range(0, len(epochs), batch_size):
        out.append(generator.generate(epochs[start:start + batch_size], n_images=n_images,
                                      random_state=random_state + start, output_type="np",
                                      batch_size=batch_size, **kwargs))
        bar.update(len(out[-1]))
    return np.concatenate(out)


def score_generation(args, generator, epochs, train, test, n_way=None, **sampling):
    """n-way top-1 of images generated from held-out EEG, shuffled-EEG control, chance.

    The judge is a logistic regression on CLIP embeddings (the encoder's CLIP
    model) of the *training* stimuli; it labels each held-out stimulus (the
    reference) and each generated image. The control pairs generated images
    with the references of other epochs, as if generated from shuffled EEG.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from ..metrics import n_way_top_k, shuffled_control

    md = epochs.metadata
    clip = generator.encoder_._clip()
    first = train[np.unique(md.image_id.iloc[train].to_numpy(), return_index=True)[1]]
    judge = LogisticRegression(max_iter=2000).fit(
        clip.embed_images(stimuli(epochs, first)), md.label.iloc[first])
    reference = np.searchsorted(judge.classes_,
                                judge.predict(clip.embed_images(stimuli(epochs, test))))
    with progress_bar(args, len(test), "generating", "epoch") as bar:
        generated = generate_batches(generator, epochs[test], bar, args.random_state, **sampling)
    proba = judge.predict_proba(clip.embed_images(generated[:, 0]))
    n_way = n_way or min(len(judge.classes_), 50)

    def score(p, ref):
        return n_way_top_k(p, ref, n_way, random_state=0)

    return dict(n_way=n_way, top1=score(proba, reference),
                shuffled_control=shuffled_control(score, proba, reference,
                                                  random_state=args.random_state),
                chance=1 / n_way, n_test_epochs=len(test))


def metrics_line(m):
    return (f"metrics: {m['n_way']}-way top-1 of images generated from held-out EEG "
            f"{m['top1']:.3f} (shuffled-EEG control {m['shuffled_control']:.3f}, chance "
            f"{m['chance']:.3f})")


def save_grid(epochs, rows, images, fname):
    """Stimulus vs generated figure, one row per class (first epoch of each)."""
    import numpy as np

    from ..viz import plot_generated_grid

    md = epochs.metadata
    labels = md.label.to_numpy()[rows] if "label" in md else np.arange(len(rows))
    pick = np.unique(labels, return_index=True)[1][:10]
    titles = list(md.class_name.iloc[rows[pick]]) if "class_name" in md else None
    fig = plot_generated_grid(stimuli(epochs, rows[pick], read=True), images[pick],
                              titles=titles, show=False)
    fig.savefig(fname, dpi=150)
    return fname
