"""One rule for special tokens, shared by pre-training's export and the benchmark's model loader.

BERTIN's published ``tokenizer.json`` has ``"post_processor": null``: it encodes text without
``<s> ... </s>``. A classification head would then read the first word instead of ``<s>``, and
sentence pairs would have no separator. Both the export of our models (which reuse that tokenizer)
and the loading of any model attach the family's standard template when it is missing.
"""

from __future__ import annotations


def ensure_special_tokens(tok, model_type: str = "roberta") -> bool:
    """If a fast tokenizer with a CLS token encodes text without it (no post-processor), give it its
    family's template: RoBERTa's ``<s> A </s></s> B </s>``, else BERT's ``[CLS] A [SEP] B [SEP]``
    with segment ids. Returns whether it attached one."""
    if tok.cls_token_id is None or tok("a").input_ids[:1] == [tok.cls_token_id]:
        return False
    from tokenizers import processors

    cls, sep = (tok.cls_token, tok.cls_token_id), (tok.sep_token, tok.sep_token_id)
    if model_type in ("roberta", "xlm-roberta", "camembert"):
        tok.backend_tokenizer.post_processor = processors.RobertaProcessing(
            sep=sep, cls=cls, trim_offsets=True, add_prefix_space=bool(getattr(tok, "add_prefix_space", False)))
    else:
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls[0]} $A {sep[0]}", pair=f"{cls[0]} $A {sep[0]} $B:1 {sep[0]}:1", special_tokens=[cls, sep])
    return True
