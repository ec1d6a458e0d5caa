"""The authors' configurations, value by value, with the file of their code each comes from.

Paths are in CVMILab-CUK/synapse. ``EEGImageGenerator.paper()`` builds the
Stage-2 one; ``mne-synapse ... --config paper`` uses it on the command line.
"""

# Stage 2: EEGImageGenerator parameter -> (value, where their code sets it).
STAGE2_SOURCES = {
    "base_model": ("stabilityai/stable-diffusion-2-1",
                   "src/models/eeg_LDM2.py: eLDM2(model_id=...)"),
    "recipe": ("paper", "src/models/eeg_LDM2.py: U-Net names with 'attn2', 'time' or 'norm2', "
                        "plus the IP processors and the adapter"),
    "n_adapt_tokens": (4, "src/config/Train_LDM.json: ip_adapter_token_num"),
    "adapter_scale": (1.0, "src/models/attention_processor.py: IPAttnProcessor2_0(scale=1.0)"),
    "max_steps": (13000, "src/gen_images.py: default checkpoint-13000 (optimiser steps; "
                         "Train_LDM.json's trainEpochs 50000 is a ceiling)"),
    "batch_size": (8, "src/config/Train_LDM.json: batch_size (per GPU; one GPU)"),
    "grad_accumulation": (4, "src/config/Train_LDM.json: gradient_accumulation_step"),
    "lr": (2e-5, "src/config/Train_LDM.json: learningRate (AdamW, betas 0.9/0.999, weight "
                 "decay 0.01 as ours)"),
    "warmup_steps": (0, "src/config/Train_LDM.json: lr_scheduler 'constant', for which "
                        "diffusers' get_scheduler ignores lr_warmup_steps (100)"),
    "grad_clip": (1.0, "src/config/Train_LDM.json: max_grad_norm"),
    "snr_gamma": (0.5, "src/config/Train_LDM.json: snr_gamma"),
    "condition_dropout": (0.1, "src/config/Train_LDM.json: cfg_scale (the dropout "
                               "probability in src/trainer/eeg_ldm2_ddp_trainer.py)"),
    "unconditional_context": ("zero_latent",
                              "src/trainer/eeg_ldm2_ddp_trainer.py (Z_latent zeroed before "
                              "the adapter) and src/models/eeg_diffusion_pipeline.py"),
    "encoder_dropout": (True, "src/models/eeg_LDM2.py: cond_models.train() (dropout 0.5 in "
                              "Train_LDM.json)"),
    "vae_sampling": ("sample", "src/trainer/eeg_ldm2_ddp_trainer.py: "
                               "vae.encode(img).latent_dist.sample()"),
    "ema_decay": (0.9999, "src/config/Train_LDM.json: use_ema 1; src/models/eeg_LDM2.py: "
                          "diffusers EMAModel at its default decay"),
    "mixed_precision": ("fp16", "src/models/eeg_LDM2.py: Accelerator(mixed_precision='fp16')"),
    "gradient_checkpointing": (True, "src/models/eeg_LDM2.py: "
                                     "unet.enable_gradient_checkpointing()"),
    "num_inference_steps": (250, "src/config/Train_LDM.json: ddim_steps; "
                                 "src/models/eeg_diffusion_pipeline.py default"),
    "guidance_scale": (7.5, "src/gen_images.py: --cfg_scale default"),
    "scheduler": ("DDIMScheduler", "src/models/eeg_LDM2.py: DDIMScheduler.from_pretrained"),
}
# generate() arguments of their sampling.
GENERATE_SOURCES = {
    "n_images": (5, "src/config/Train_LDM.json: num_samples; "
                    "src/trainer/eeg_ldm2_ddp_trainer.py: test(num_samples=5)"),
}

PAPER_STAGE2 = {name: value for name, (value, _) in STAGE2_SOURCES.items()}
PAPER_GENERATE = {name: value for name, (value, _) in GENERATE_SOURCES.items()}
