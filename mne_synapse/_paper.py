"""The authors' configurations, value by value, with the file of their code each comes from.

Paths are in CVMILab-CUK/synapse. ``SynapseEncoder.paper()`` builds the Stage-1
one, ``EEGImageGenerator.paper()`` the Stage-2 one; ``mne-synapse ... --config
paper`` uses both on the command line. ``doc/method.rst`` shows them as tables.
"""

# The input of their released encoder (EEGEncoder_BLIP2_*.pth), and how to get there.
N_ELECTRODES = 128
N_SAMPLES = 440
INPUT_HINT = (
    f"the released encoder takes their {N_ELECTRODES} electrodes (the CVPR40 montage, in "
    f"the order of their files) x {N_SAMPLES} samples, i.e. samples 20:460 (20-460 ms "
    "after onset) at 1 kHz: load_cvpr40 crops so by default; crop other data with "
    "epochs.crop(tmin=0.02, tmax=0.46, include_tmax=False) or X[:, :, 20:460]")

# Stage 1: SynapseEncoder parameter -> (value, where their code sets it).
STAGE1_SOURCES = {
    "preset": ("paper", "src/models/eeg_AE.py: eeg_AutoEncoder, sized by src/config/"
                        "Train_LDM.json as their released encoder (128 x 440 in, dims "
                        "64..1024, n_layer 2, n_head 64, dropout 0.5, GroupNorm 32, "
                        "up_mode linear)"),
    "clip_model": ("ViT-H-14", "src/models/clip_embedder.py: Frozen_CLIPImage2TextEmbedder"),
    "clip_pretrained": ("laion2b_s32b_b79k", "src/models/clip_embedder.py"),
    "text_layer": ("last", "src/models/clip_embedder.py: text.transformer(x) without the "
                           "causal mask, then ln_final"),
    "recon_weight": (0.5, "src/trainer/eeg_ae_SD2_blip_trainer.py: AutomaticWeightedLoss(5) "
                          "over sdsc, sim, cos, rec, align with its weights left at 1 (not "
                          "in the optimiser): 0.5 x (MSE + 1 - SDSC)"),
    "align_weight": (0.5, "src/trainer/eeg_ae_SD2_blip_trainer.py: the same weighting, "
                          "0.5 x (MSE + cosine distance)"),
    "contrastive_weight": (0.5, "src/trainer/eeg_ae_SD2_blip_trainer.py: the same "
                                "weighting, 0.5 x InfoNCE"),
    "uncertainty_weighting": (False, "src/trainer/eeg_ae_SD2_blip_trainer.py: its "
                                     "AutomaticWeightedLoss never trained"),
    "learn_temperature": (False, "src/libs/losses.py: ContrastiveLoss, logit scale "
                                 "ln(1 / 0.07) = 2.6592, not in the optimiser"),
    "cosine_axis": ("tokens", "src/trainer/eeg_ae_SD2_blip_trainer.py: "
                              "nn.CosineSimilarity(dim=1) on the (n, 77, 1024) latent"),
    "max_epochs": (1000, "src/config/Train_AE.json: trainEpochs"),
    "batch_size": (32, "src/config/Train_AE.json: batch_size"),
    "lr": (1e-4, "src/config/Train_AE.json: learningRate (AdamW, betas 0.9/0.999)"),
    "lr_schedule": (None, "src/trainer/eeg_ae_SD2_blip_trainer.py: a constant learning rate"),
    "weight_decay": (0.01, "src/trainer/eeg_ae_SD2_blip_trainer.py: torch.optim.AdamW "
                           "at its default"),
    "grad_clip": (1.0, "src/trainer/eeg_ae_SD2_blip_trainer.py: clip_grad_norm_(..., 1.0)"),
    "augment_noise": (0.0, "src/trainer/eeg_ae_SD2_blip_trainer.py: no augmentation"),
    "augment_shift": (0, "src/trainer/eeg_ae_SD2_blip_trainer.py: no augmentation"),
    "augment_channel_drop": (0.0, "src/trainer/eeg_ae_SD2_blip_trainer.py: no augmentation"),
    "augment_mix": (0.0, "src/trainer/eeg_ae_SD2_blip_trainer.py: no augmentation"),
    "alignment": (None, "src/datalibs/dataset.py: EEGPrepDataset feeds the stored "
                        "(preprocessed) values as they are"),
}

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
    "resolution": (512, "src/config/Train_LDM.json: img_size (SD 2.1's own config says 768)"),
}
# generate() arguments of their sampling.
GENERATE_SOURCES = {
    "n_images": (5, "src/config/Train_LDM.json: num_samples; "
                    "src/trainer/eeg_ldm2_ddp_trainer.py: test(num_samples=5)"),
}

PAPER_STAGE1 = {name: value for name, (value, _) in STAGE1_SOURCES.items()}
PAPER_STAGE2 = {name: value for name, (value, _) in STAGE2_SOURCES.items()}
PAPER_GENERATE = {name: value for name, (value, _) in GENERATE_SOURCES.items()}
