"""Data-parallel training of both stages, run by ``tests/test_distributed.py``.

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no tests/ddp_script.py DATA-epo.fif OUT

Both stages train on one ``Accelerator(cpu=True)`` (gloo) with gradient
accumulation. Every process writes its final weights, how far they moved from
their initial values, and its loss curves to ``OUT/rank<k>.npz``.
"""

import sys
from pathlib import Path

import numpy as np
import torch


def main(epochs_fname, out):
    import mne
    from accelerate import Accelerator
    from skorch.callbacks import Callback
    from test_generator import _tiny_base  # the random tiny Stable Diffusion of the tests

    from mne_synapse import EEGImageGenerator, SynapseEncoder

    class InitialWeights(Callback):
        def on_train_begin(self, net, **kwargs):
            self.weights_ = [p.detach().clone() for p in net.module_.parameters()]

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    rank = accelerator.process_index
    epochs = mne.read_epochs(epochs_fname, verbose=False)
    init = InitialWeights()
    # Validation and early stopping (patience not reached; best weights restored)
    # exercise the loss averaging over processes and unwrapping after training.
    encoder = SynapseEncoder(
        max_epochs=2, batch_size=16, module_kwargs=dict(widths=(16, 32), n_heads=2),
        validation_fraction=0.2, early_stopping=5, callbacks=[("init", init)],
        random_state=0, verbose=False, accelerator=accelerator).fit(epochs)
    base = _tiny_base()
    generator = EEGImageGenerator(
        encoder=encoder, base_model=base, max_steps=3, batch_size=4, grad_accumulation=2,
        random_state=0, verbose=False, accelerator=accelerator).fit(epochs)
    generator.save(out / f"saved_by_rank{rank}")  # only the main process writes

    stock = dict(base.unet.named_parameters())  # the fit finetuned a copy
    moved_generator = max(
        float((p.detach() - stock[name].detach()).abs().max())
        for name, p in generator.unet_.named_parameters() if p.requires_grad and name in stock)
    moved_encoder = max(float((p.detach() - p0).abs().max())
                        for p, p0 in zip(encoder.net_.module_.parameters(), init.weights_))
    weights = {f"encoder.{k}": v.numpy() for k, v in encoder.net_.module_.state_dict().items()}
    weights.update({f"generator.{k}": v.numpy()
                    for k, v in generator._trained_state().items()})
    np.savez(out / f"rank{rank}.npz", **weights, world_size=accelerator.num_processes,
             moved_encoder=moved_encoder, moved_generator=moved_generator,
             train_loss=encoder.history_[:, "train_loss"],
             valid_loss=encoder.history_[:, "valid_loss"],
             loss_curve=generator.loss_curve_)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
