"""Tiny models with random weights, made here for the model stages' tests (nothing is
downloaded): a Whisper checkpoint file and a transformers image-to-text folder. Run with the
torch venv's python: `python tiny_models.py FOLDER` writes FOLDER/whisper.pt and
FOLDER/caption/, and prints their paths as JSON."""

import json
import sys
from pathlib import Path


def whisper_checkpoint(path: Path) -> Path:
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    # 1500 audio positions (30 s windows), a multilingual vocabulary: what whisper's code expects
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51865, n_text_ctx=64, n_text_state=8, n_text_head=2, n_text_layer=1)
    torch.save({"dims": dims.__dict__, "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


def caption_folder(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        BertConfig,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    words = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "cat", "dog", "on", "the", "road", "red", "car"]
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", unk_token="[UNK]")
    encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    decoder = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64, is_decoder=True, add_cross_attention=True)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"whisper": str(whisper_checkpoint(out / "whisper.pt")),
                      "caption": str(caption_folder(out / "caption"))}))
