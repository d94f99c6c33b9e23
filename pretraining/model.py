"""The RoBERTa masked LM and its loss.

:class:`MaskedLM` is ``transformers``' ``FlaxRobertaForMaskedLMModule`` with one change: it can
gather the masked positions *before* the output layer, so the 50k-vocabulary projection runs on
~15% of the tokens (the original BERT code's ``masked_lm_positions``). It reuses the same
submodules under the same names, so its parameters are exactly ``FlaxRobertaForMaskedLM``'s and
export needs no conversion.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from transformers import RobertaConfig
from transformers.models.roberta.modeling_flax_roberta import FlaxRobertaLMHead, FlaxRobertaModule

from bertin_bench.jaxtools import masked_loss_sums

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def roberta_config(model_cfg, tokenizer=None) -> RobertaConfig:
    """``RobertaConfig`` from the ``model`` section, with the tokenizer's special token ids."""
    ids = {}
    if tokenizer is not None:
        ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
    return RobertaConfig(
        vocab_size=model_cfg.vocab_size, hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_hidden_layers, num_attention_heads=model_cfg.num_attention_heads,
        intermediate_size=model_cfg.intermediate_size, max_position_embeddings=model_cfg.max_position_embeddings,
        type_vocab_size=model_cfg.type_vocab_size, hidden_dropout_prob=model_cfg.hidden_dropout_prob,
        attention_probs_dropout_prob=model_cfg.attention_probs_dropout_prob,
        initializer_range=model_cfg.initializer_range, layer_norm_eps=model_cfg.layer_norm_eps, **ids,
    )


def position_ids(input_ids: jax.Array, pad_id: int) -> jax.Array:
    """RoBERTa positions: pad_id+1, pad_id+2, ... for real tokens, pad_id for padding (as HF)."""
    mask = (input_ids != pad_id).astype("i4")
    return jnp.cumsum(mask, axis=-1) * mask + pad_id


class MaskedLM(nn.Module):
    config: RobertaConfig
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.roberta = FlaxRobertaModule(config=self.config, add_pooling_layer=False, dtype=self.dtype)
        self.lm_head = FlaxRobertaLMHead(config=self.config, dtype=self.dtype)

    def __call__(self, input_ids, attention_mask, mlm_positions=None, deterministic: bool = True):
        hidden = self.roberta(
            input_ids, attention_mask, jnp.zeros_like(input_ids), position_ids(input_ids, self.config.pad_token_id),
            None, deterministic=deterministic, return_dict=False,
        )[0]
        if mlm_positions is not None:  # [B, L, H] -> [B, K, H]: the head only sees masked tokens
            hidden = jnp.take_along_axis(hidden, mlm_positions[..., None], axis=1)
        shared = None
        if self.config.tie_word_embeddings:
            shared = self.roberta.variables["params"]["embeddings"]["word_embeddings"]["embedding"]
        return self.lm_head(hidden, shared_embedding=shared)


def init_params(module: MaskedLM, seq_len: int, seed: int):
    ids = jnp.ones((1, seq_len), dtype=jnp.int32)
    return module.init(jax.random.PRNGKey(seed), ids, jnp.ones_like(ids))["params"]


def batch_loss_sums(module: MaskedLM, params, batch: dict, *, masked_only: bool, deterministic: bool = True,
                    dropout_rng=None):
    """Loss sums of a batch, with logits at the masked positions only, or at every position (the
    plain way: ``labels`` = -100 outside the masked positions)."""
    rngs = None if dropout_rng is None else {"dropout": dropout_rng}
    if masked_only:
        logits = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"], batch["mlm_positions"],
                              deterministic=deterministic, rngs=rngs)
        return masked_loss_sums(logits, batch["mlm_ids"], batch["mlm_weights"])
    logits = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                          deterministic=deterministic, rngs=rngs)
    labels = batch["labels"]
    return masked_loss_sums(logits, labels, (labels >= 0).astype(jnp.float32))
