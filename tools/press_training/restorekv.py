"""RestoreKV's trained part cannot be made in this project; this writes an UNTRAINED one of the published format.

What RestoreKV trains (kvpress's RestoreKVPress docstring; the authors' cvsp-lab/RestoreKV): n restore embeddings and
a LoRA adapter (~0.4% of the parameters), by self-distillation from the frozen full-cache model — the student is the
same model with its context evicted by KVzip (budget-matched) plus the restore cache that the restore tokens make in
one LoRA-adapted pass, and the loss a KL divergence between the two models' next-token distributions on text that
follows the context. Why it is not made here:
- kvpress holds no training code for it, only the inference (restorekv_press.py);
- the authors' README lists the full training code as "coming soon"; the training script that their repository does
  hold (experiments/train_learnable_restore.py) runs on their KVzip implementation (model/ and attention/ of their
  repository: ModelKVzip, its evicting KV caches and compiled CUDA kernels, csrc/) and on `datasets` (fineweb-edu),
  none of which is on the GPU machine or in kvpress, and whose recipe (restore tokens: 32 by the script's default,
  8 in the released adapters; ratios, curriculum, losses) is not settled by what is published;
- kvpress itself loads the adapter through transformers' PEFT integration (model.load_adapter, set_adapter,
  enable_adapters), which needs the `peft` package, absent from the GPU machine (torch, transformers, tokenizers,
  numpy); Attend's loader does not (it merges the LoRA itself, src/presses/restorekv.ts).
Re-implementing the differentiable KVzip eviction with restore tokens from scratch would be a new method, not the
authors' recipe, so it is not attempted.

What this script writes into OUT, in the format of the authors' releases (higokri/RestoreKV-<model>): 
restore_embeddings.safetensors (`restore_embeddings` [n, hidden], drawn N(0, 0.02) as the authors initialise them) and
a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors; rank --rank 8, alpha --alpha 16, the seven
projections, A drawn as PEFT does (Kaiming uniform), B zero as PEFT initialises it, so that the adapter changes
nothing). With it `--press restorekv --press-opt path=OUT` runs end to end (KVzip's selection, the restore pass, the
budget matching), with restore tokens that carry no trained information.

    python3 tools/press_training/restorekv.py --kvpress .oracle/kvpress --model models/attend-mini --text FILE --out OUT
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--restore-tokens", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=int, default=16)
    a = ap.parse_args()
    torch, kvpress, device = common.setup(a)
    from safetensors.torch import save_file

    print(__doc__.split("\n\n")[0])
    model, _ = common.load_model(a.model, "cpu")
    cfg = model.config
    g = torch.Generator().manual_seed(a.seed)
    save_file({"restore_embeddings": (torch.randn(a.restore_tokens, cfg.hidden_size, generator=g) * 0.02).contiguous()},
              os.path.join(a.out, "restore_embeddings.safetensors"))
    tensors = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in TARGETS and name.startswith("model.layers."):
            bound = 1 / math.sqrt(mod.in_features)  # kaiming_uniform_(a=√5) on [rank, in]
            tensors[f"base_model.model.{name}.lora_A.weight"] = (torch.rand(a.rank, mod.in_features, generator=g) * 2 - 1) * bound
            tensors[f"base_model.model.{name}.lora_B.weight"] = torch.zeros(mod.out_features, a.rank)
    save_file(tensors, os.path.join(a.out, "adapter_model.safetensors"))
    config = dict(peft_type="LORA", task_type="CAUSAL_LM", base_model_name_or_path=a.model, r=a.rank, lora_alpha=a.alpha,
                  lora_dropout=0.0, target_modules=TARGETS, bias="none", fan_in_fan_out=False, use_rslora=False,
                  use_dora=False, modules_to_save=None, rank_pattern={}, alpha_pattern={}, inference_mode=True)
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote an UNTRAINED RestoreKV part to {a.out}: {a.restore_tokens} restore embeddings, "
          f"{len(tensors) // 2} zero LoRA pairs (rank {a.rank})")


if __name__ == "__main__":
    main()
