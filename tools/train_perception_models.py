#!/usr/bin/env python3
"""Regenerate the shipped perception models in engram_ros/perception/models/.

    source tools/env.sh && python tools/train_perception_models.py [--dim 256] [--only visual]

* ``visual_vocabulary.npz``: a binary ORB vocabulary (k-majority clustering of descriptors
  from procedural scenes, engram_ros/perception/scenes.py) and its idf weights;
* ``visual_compressor.pt``: the MLP from bag-of-words + colour/layout cues to the ``dim``-d
  context vector, trained contrastively (InfoNCE): two jittered views of one scene are a
  positive pair, other scenes are negatives;
* ``sound_prototypes.npz``: standardisation statistics and one prototype per sound class,
  from sounds synthesised by engram_ros/perception/sounds.py.

Deterministic for a given seed; about two minutes on two cores. Prints held-out figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram_ros.perception import audio  # noqa: E402
from engram_ros.perception import scenes  # noqa: E402
from engram_ros.perception import sounds  # noqa: E402
from engram_ros.perception import visual  # noqa: E402


def k_majority(descriptors: np.ndarray, k: int, iterations: int, rng: np.random.Generator
               ) -> np.ndarray:
    """Binary k-means in Hamming space: centres are the bitwise majority of their members."""
    centres = descriptors[rng.choice(len(descriptors), k, replace=False)].copy()
    bits = np.unpackbits(descriptors, axis=1)
    for _ in range(iterations):
        words = visual.assign_words(descriptors, centres)
        for c in range(k):
            members = bits[words == c]
            if len(members) == 0:                     # re-seed an empty word
                centres[c] = descriptors[rng.integers(len(descriptors))]
            else:
                centres[c] = np.packbits(members.mean(axis=0) > 0.5)
    return centres


def train_visual(dim: int, n_scenes: int, views: int, vocabulary_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    t0 = time.time()
    images: list[list[tuple[np.ndarray, np.ndarray]]] = []
    n_eval = n_scenes // 5
    for s in range(n_scenes + n_eval):
        scene = scenes.render_scene(s)
        images.append([scenes.render_view(s, v, scene=scene) for v in range(views)])
    print(f'rendered {len(images) * views} views in {time.time() - t0:.0f} s', flush=True)

    descriptors = np.concatenate([visual.orb_descriptors(visual.grey_image(views_[0][0]))
                                  for views_ in images[:n_scenes]])
    vocabulary = k_majority(descriptors, vocabulary_size, 8, rng)
    doc_freq = np.zeros(vocabulary_size)
    for views_ in images[:n_scenes]:
        words = visual.assign_words(visual.orb_descriptors(visual.grey_image(views_[0][0])),
                                    vocabulary)
        doc_freq[np.unique(words)] += 1
    idf = np.log((n_scenes + 1) / (doc_freq + 1)).astype(np.float32) + 0.1
    print(f'vocabulary: {vocabulary_size} words from {len(descriptors)} descriptors '
          f'({time.time() - t0:.0f} s)', flush=True)

    feats = np.stack([np.stack([visual.bow_features(rgb, depth, vocabulary, idf)[0]
                                for rgb, depth in views_]) for views_ in images])
    print(f'features {feats.shape} ({time.time() - t0:.0f} s)', flush=True)
    train, held = torch.from_numpy(feats[:n_scenes]), torch.from_numpy(feats[n_scenes:])
    model = visual.Compressor(feats.shape[2], dim)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for step in range(600):
        idx = torch.randperm(n_scenes)[:64]
        va = torch.randint(views, (len(idx),))
        vb = (va + torch.randint(1, views, (len(idx),))) % views
        za, zb = model(train[idx, va]), model(train[idx, vb])
        logits = za @ zb.T / 0.1
        target = torch.arange(len(idx))
        loss = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f'step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)', flush=True)
    model.eval()
    with torch.no_grad():
        z = model(held.reshape(-1, held.shape[2])).reshape(held.shape[0], views, -1)
        same = torch.einsum('sd,sd->s', z[:, 0], z[:, 1]).mean().item()
        sims = z[:, 0] @ z[:, 1].T
        other = sims[~torch.eye(len(z), dtype=torch.bool)].mean().item()
        top1 = (sims.argmax(dim=1) == torch.arange(len(z))).float().mean().item()
    print(f'held-out scenes ({n_eval}): cosine same place {same:.2f}, other places {other:.2f}, '
          f'top-1 place retrieval {top1:.2f} (loss {loss.item():.3f})')
    visual.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(visual.VOCABULARY_FILE, vocabulary=vocabulary, idf=idf)
    torch.save({'n_in': feats.shape[2], 'dim': dim, 'hidden': model.net[0].out_features,
                'weights': {k: v.half() for k, v in model.state_dict().items()}},
               visual.COMPRESSOR_FILE)
    print(f'wrote {visual.VOCABULARY_FILE.name}, {visual.COMPRESSOR_FILE.name} '
          f'({time.time() - t0:.0f} s)')


def train_sounds(per_class: int, seed: int, sr: int = 16000) -> None:
    rng = np.random.default_rng(seed)
    names = tuple(sounds.GENERATORS) + ('background',)
    classes = tuple(sounds.GENERATORS) + ('',)

    def examples(offset: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for ci, name in enumerate(names):
            for i in range(per_class * (3 if name == 'background' else 1)):
                x = sounds.synthesise(name, offset + 1000 * ci + i, sr,
                                      level=float(rng.uniform(0.05, 0.9)),
                                      snr_db=float(rng.uniform(10, 40)))
                xs.append(audio.audio_features(x, sr))
                ys.append(ci)
        return np.stack(xs), np.array(ys)

    x, y = examples(0)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    model = audio.SoundModel(mean, scale, classes, np.zeros((0, x.shape[1])), y)
    model.examples = np.stack([model.standardise(f) for f in x]).astype(np.float32)
    xt, yt = examples(500)
    classifier = audio.SoundClassifier(model)
    predicted = [classifier.classify(f)[0] for f in xt]
    hits = [p == classes[t] for p, t in zip(predicted, yt)]
    target = yt < len(classes) - 1
    print(f'sound classifier: {len(classes) - 1} classes + background, held-out: '
          f'{np.mean(np.array(hits)[target]):.2f} of class sounds tagged right, '
          f'{np.mean(np.array(hits)[~target]):.2f} of background sounds left untagged')
    np.savez_compressed(audio.PROTOTYPES_FILE, mean=mean.astype(np.float32),
                        scale=scale.astype(np.float32), classes=np.array(classes),
                        examples=model.examples.astype(np.float16).astype(np.float32),
                        labels=y.astype(np.int16))
    print(f'wrote {audio.PROTOTYPES_FILE.name}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dim', type=int, default=256, help='context vector dimension')
    parser.add_argument('--scenes', type=int, default=200, help='training scenes')
    parser.add_argument('--views', type=int, default=4, help='views per scene')
    parser.add_argument('--words', type=int, default=256, help='visual vocabulary size')
    parser.add_argument('--per-class', type=int, default=30, help='synthetic sounds per class')
    parser.add_argument('--only', choices=('visual', 'sound'), help='train one model only')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(2)
    torch.set_num_threads(2)
    if args.only in (None, 'visual'):
        train_visual(args.dim, args.scenes, args.views, args.words, args.seed)
    if args.only in (None, 'sound'):
        train_sounds(args.per_class, args.seed)
    return 0


if __name__ == '__main__':
    sys.exit(main())
