#!/usr/bin/env python3
"""Trains the demo model: a small byte-level RWKV-7 on the King James Bible, on the CPU.

Data: the KJV text from Debian's `bible-kjv-text` package (its copyright notice: the text's
copyright has expired; 1611), dumped with the `bible` program of package `bible-kjv`:
    apt-get install -y bible-kjv python3-torch libopenblas0-pthread
The verse references are stripped; the last 2% of the text (from Revelation back) is held out.

    /usr/bin/python3 scripts/train-demo-model.py --out /tmp/demo     # the shipped model's settings

Writes OUT/demo.pth (the state dict with the official RWKV-7 names), OUT/train.json (the loss
curve, the held-out perplexity in PyTorch, the settings) and OUT/heldout.bin (the held-out bytes).
Then `--eval` (same --out, --n-embed, --n-layer) writes OUT/eval.json, the perplexities the model
card and the CI test quote; and: echo-engine convert --in OUT/demo.pth --out M.bin --type FP16.

Debian's PyTorch uses the reference BLAS unless an optimised one is installed: with OpenBLAS a
step took 4 s here instead of 8. One thread (the default) is about as fast as two on two cores,
and does not slow to a crawl when anything else runs beside it.

The model is the RWKV-7 ("x070") time mix and channel mix as in the official code, written here
for clarity over speed: the WKV recurrence runs token by token. Smoke test (seconds):
    /usr/bin/python3 scripts/train-demo-model.py --out /tmp/smoke --n-embed 64 --n-layer 2 --steps 3 --ctx 32
"""

import argparse
import json
import math
import os
import re
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def corpus():
    text = subprocess.run(['bible', '-f', 'Gen1:1-Rev22:21'], capture_output=True, text=True, check=True).stdout
    lines = [re.sub(r'^\S+\d+:\d+ ', '', l) for l in text.splitlines() if re.match(r'^\S+\d+:\d+ ', l)]
    return '\n'.join(lines).encode('utf-8')


class Block(nn.Module):
    def __init__(self, i, E, H, F_, D):
        super().__init__()
        self.i, self.H, self.S = i, H, E // H
        self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
        if i == 0:
            self.ln0 = nn.LayerNorm(E)
        self.att = nn.Module()
        a = self.att
        p = lambda *s, init=0.0: nn.Parameter(torch.full(s, init))
        for x in 'rwkvag':
            setattr(a, 'x_' + x, nn.Parameter(torch.rand(1, 1, E) * 0.5 + 0.25))
        a.w1, a.w2, a.w0 = p(E, D), nn.Parameter(torch.randn(D, E) * 0.1), nn.Parameter(torch.linspace(-6, -1, E).view(1, 1, E))
        a.a1, a.a2, a.a0 = p(E, D), nn.Parameter(torch.randn(D, E) * 0.1), p(1, 1, E)
        if i > 0:
            a.v1, a.v2, a.v0 = p(E, D), nn.Parameter(torch.randn(D, E) * 0.1), p(1, 1, E, init=1.0)
        a.g1, a.g2 = p(E, 2 * D), nn.Parameter(torch.randn(2 * D, E) * 0.1)
        a.k_k, a.k_a = p(1, 1, E, init=0.85), p(1, 1, E, init=1.0)
        a.r_k = nn.Parameter(torch.randn(H, self.S) * 0.1)
        for m in ('receptance', 'key', 'value', 'output'):
            setattr(a, m, nn.Linear(E, E, bias=False))
        nn.init.zeros_(a.output.weight)
        a.ln_x = nn.GroupNorm(H, E, eps=64e-5)
        self.ffn = nn.Module()
        self.ffn.x_k = nn.Parameter(torch.rand(1, 1, E) * 0.5 + 0.25)
        self.ffn.key, self.ffn.value = nn.Linear(E, F_, bias=False), nn.Linear(F_, E, bias=False)
        nn.init.zeros_(self.ffn.value.weight)
        for w in (a.w1, a.a1, a.g1) + ((a.v1,) if i > 0 else ()):
            nn.init.normal_(w, std=0.1)

    def forward(self, x, v_first):
        a, B, T, E, H, S = self.att, *x.shape, self.H, self.S
        xx = self.ln1(x)
        d = F.pad(xx, (0, 0, 1, -1)) - xx
        xr, xw, xk, xv, xa, xg = (xx + d * getattr(a, 'x_' + n) for n in 'rwkvag')
        r, k, v = a.receptance(xr), a.key(xk), a.value(xv)
        decay = torch.exp(-math.exp(-0.5) * torch.sigmoid(a.w0 + torch.tanh(xw @ a.w1) @ a.w2))
        if self.i == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(a.v0 + (xv @ a.v1) @ a.v2)
        aa = torch.sigmoid(a.a0 + (xa @ a.a1) @ a.a2)
        g = torch.sigmoid(xg @ a.g1) @ a.g2
        kk = F.normalize((k * a.k_k).view(B, T, H, S), dim=-1).view(B, T, E)
        k = k * (1 + (aa - 1) * a.k_a)
        # Per-token views made once by unbind: indexing [:, t] in the loop would make the backward
        # pass build a full-size zero gradient for every token.
        col, row = (lambda z: z.view(B, T, H, S, 1).unbind(1)), (lambda z: z.view(B, T, H, 1, S).unbind(1))
        ks, bs, vs, ds, rs, nkk = row(k), row(kk * aa), col(v), row(decay), row(r), row(-kk)
        state = x.new_zeros(B, H, S, S)
        outs = []
        for t in range(T):
            # state @ (-kk)(kk*a)^T is rank one. Products with vectors are written as broadcasts and
            # sums: CPU batched matmul on 64 tiny matrices costs far more than the arithmetic.
            sa = (state * nkk[t]).sum(-1, keepdim=True)
            state = state * ds[t] + sa * bs[t] + vs[t] * ks[t]
            outs.append((state * rs[t]).sum(-1).view(B, E))
        out = a.ln_x(torch.stack(outs, 1).view(B * T, E)).view(B, T, E)
        out = out + ((r * k * a.r_k.view(1, 1, E)).view(B, T, H, S).sum(-1, keepdim=True) * v.view(B, T, H, S)).view(B, T, E)
        x = x + a.output(out * g)
        xx = self.ln2(x)
        xk = xx + (F.pad(xx, (0, 0, 1, -1)) - xx) * self.ffn.x_k
        return x + self.ffn.value(torch.relu(self.ffn.key(xk)) ** 2), v_first


class RWKV7(nn.Module):
    def __init__(self, E, L, V=256, head_size=64):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        self.blocks = nn.ModuleList(Block(i, E, E // head_size, 4 * E, max(16, E // 16)) for i in range(L))
        self.ln_out = nn.LayerNorm(E)
        self.head = nn.Linear(E, V, bias=False)

    def forward(self, idx):
        x = self.blocks[0].ln0(self.emb(idx))
        v_first = None
        for b in self.blocks:
            x, v_first = b(x, v_first)
        return self.head(self.ln_out(x))


def perplexity(model, held, ctx, windows=None):
    """Perplexity per byte of `held` in windows of ctx bytes, each from the initial state,
    predicting every next byte: what `echo-engine perplexity --window ctx` computes."""
    model.eval()
    with torch.no_grad():
        n = (len(held) - 1) // ctx
        n = ctx * (n if windows is None else min(n, windows))
        xs, ys = held[:n].view(-1, ctx), held[1:n + 1].view(-1, ctx)
        nll = sum(F.cross_entropy(model(xs[i:i + 16]).view(-1, 256), ys[i:i + 16].reshape(-1), reduction='sum').item()
                  for i in range(0, len(xs), 16))
    return math.exp(nll / n)


def evaluate(args):
    """--eval: the perplexities the model card and the CI test quote, from OUT/demo.pth: on the
    whole held-out text and on its first --slice-windows windows (the slice committed for CI), with
    FP32 weights and with the 2-D weights rounded to FP16 as `convert --type FP16` stores them."""
    torch.set_num_threads(args.threads)
    held = torch.tensor(list(open(os.path.join(args.out, 'heldout.bin'), 'rb').read()), dtype=torch.long)
    model = RWKV7(args.n_embed, args.n_layer)
    model.load_state_dict(torch.load(os.path.join(args.out, 'demo.pth')))
    result = {'window': args.ctx, 'slice_windows': args.slice_windows}
    for weights in ('fp32', 'fp16'):
        if weights == 'fp16':
            with torch.no_grad():
                for name, p in model.named_parameters():
                    # convert keeps emb, head and the LoRA/time-mix vectors' layout; 2-D matrices go FP16.
                    if p.dim() == 2 and not name.endswith('r_k'):
                        p.copy_(p.half().float())
        result[f'ppl_heldout_{weights}'] = perplexity(model, held, args.ctx)
        result[f'ppl_slice_{weights}'] = perplexity(model, held, args.ctx, args.slice_windows)
    with open(os.path.join(args.out, 'eval.json'), 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--n-embed', type=int, default=256)
    p.add_argument('--n-layer', type=int, default=4)
    p.add_argument('--ctx', type=int, default=128)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--steps', type=int, default=600)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--threads', type=int, default=1, help='more than 1 slows down badly when anything else runs')
    p.add_argument('--save-every', type=int, default=50, help='write demo.pth and train.json every N steps')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--eval', action='store_true', help='evaluate OUT/demo.pth instead of training')
    p.add_argument('--slice-windows', type=int, default=32)
    args = p.parse_args()
    if args.eval:
        return evaluate(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    data = torch.tensor(list(corpus()), dtype=torch.long)
    split = int(len(data) * 0.98)
    train, held = data[:split], data[split:]
    with open(os.path.join(args.out, 'heldout.bin'), 'wb') as f:
        f.write(bytes(held.tolist()))
    model = RWKV7(args.n_embed, args.n_layer)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    curve, start = [], time.time()

    def save(step, ppl=None):
        # Written whole and then renamed, so an interrupted run leaves the last complete checkpoint.
        torch.save(model.state_dict(), os.path.join(args.out, 'demo.pth.tmp'))
        os.replace(os.path.join(args.out, 'demo.pth.tmp'), os.path.join(args.out, 'demo.pth'))
        with open(os.path.join(args.out, 'train.json'), 'w') as f:
            json.dump({'params': n_params, 'args': vars(args), 'steps_done': step, 'seconds': round(time.time() - start),
                       'loss_curve': curve, 'heldout_window': args.ctx, 'heldout_ppl_pytorch': ppl}, f, indent=1)

    for step in range(1, args.steps + 1):
        model.train()
        lr = args.lr * min(1.0, step / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in opt.param_groups:
            group['lr'] = lr
        ix = torch.randint(len(train) - args.ctx - 1, (args.batch,))
        xb = torch.stack([train[i:i + args.ctx] for i in ix])
        yb = torch.stack([train[i + 1:i + args.ctx + 1] for i in ix])
        loss = F.cross_entropy(model(xb).view(-1, 256), yb.view(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps:
            curve.append([step, round(loss.item(), 4)])
            print(f'step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - start:.0f}s', flush=True)
        if step % args.save_every == 0 and step < args.steps:
            save(step)
    ppl = perplexity(model, held, args.ctx)
    save(args.steps, ppl)
    print('params', n_params, 'held-out perplexity (bytes)', round(ppl, 4))


if __name__ == '__main__':
    main()
