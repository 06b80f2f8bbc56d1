#!/usr/bin/env python3
"""Makes the converter's test fixtures in tests/fixtures/checkpoints/ with real PyTorch.

For each RWKV version (v4, v5.1, v5.2, v6, v7) it builds a tiny random-weight state dict with the
official key names, shapes and order (the RWKV-LM training code's), and writes:

  <v>.pth            torch.save of the state dict (PyTorch's zip format)
  <v>.safetensors    the same tensors through the `safetensors` package
  <v>-FP32.bin       what rwkv.cpp's python/convert_pytorch_to_ggml.py writes for it (FP32)
  <v>-FP16.bin       the same, FP16
  <v>-logits.bin     f32 logits of the PyTorch model after TOKENS fed one at a time
  views.pth, views-FP16.bin   v4 with tensors that are views: a transposed one (non-contiguous
                     strides), two sharing one storage at different offsets

The .bin oracle is `rwkv_cpp_convert` below: our own Python port of what rwkv.cpp's converter
does (read from its source: per-version squeezes, reshapes, transposes, exp transforms, v7's
x_rwkvag concatenation, FP16 for tensors of 2+ dims except its by-name exclusions), run with
PyTorch's own ops. It shares no code with the Rust converter. The logits come from `forward`, a
small RWKV forward pass in PyTorch (float64) written from the official model definitions, with
rwkv.cpp's conventions where they differ (see the notes there).

Run once (needs python3-torch and safetensors; not needed by CI):
    python3 scripts/make-checkpoint-fixtures.py [OUT_DIR]
Big checkpoint for memory measurements (random weights, not committed):
    python3 scripts/make-checkpoint-fixtures.py --big /tmp/big.pth [--n-embed 1024 --n-layer 24]
"""

import argparse
import collections
import os
import struct
import sys

import torch

TOKENS = [3, 17, 42, 5, 60, 1, 33, 8]

CONFIGS = {
    # version: n_embed, n_layer, n_vocab, ffn width, head size, storage dtype of the checkpoint
    'v4': dict(E=32, L=2, V=64, F=128, S=None, dtype=torch.float32),
    'v5.1': dict(E=32, L=2, V=64, F=128, S=8, dtype=torch.float16),
    'v5.2': dict(E=32, L=2, V=64, F=128, S=8, dtype=torch.bfloat16),
    'v6': dict(E=32, L=2, V=64, F=112, S=8, dtype=torch.float32),
    # v7 with head size 64, as every real one: ggml's SIMD wkv7 needs a multiple of its vector step.
    'v7': dict(E=64, L=2, V=64, F=128, S=64, dtype=torch.bfloat16),
}


def state_dict(ver, c, seed=1):
    g = torch.Generator().manual_seed(seed)
    E, L, V, F, S = c['E'], c['L'], c['V'], c['F'], c['S']
    H = E // S if S else None
    sd = collections.OrderedDict()

    def rnd(*shape, scale=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale + mean

    def uni(*shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo

    def lin(o, i):
        return rnd(o, i, scale=1.0 / i ** 0.5)

    sd['emb.weight'] = rnd(V, E, scale=0.5)
    for l in range(L):
        b = f'blocks.{l}.'
        def ln(name):
            sd[b + name + '.weight'] = uni(E, lo=0.7, hi=1.3)
            sd[b + name + '.bias'] = rnd(E, scale=0.1)
        ln('ln1')
        ln('ln2')
        if ver in ('v6', 'v7') and l == 0:
            ln('ln0')
        mix = lambda: uni(1, 1, E)
        if ver == 'v4':
            sd[b + 'att.time_decay'] = uni(E, lo=-2, hi=1)
            sd[b + 'att.time_first'] = uni(E, lo=-1, hi=1)
            for x in 'kvr':
                sd[b + f'att.time_mix_{x}'] = mix()
            for m in ('key', 'value', 'receptance', 'output'):
                sd[b + f'att.{m}.weight'] = lin(E, E)
        elif ver in ('v5.1', 'v5.2'):
            if ver == 'v5.1':
                sd[b + 'att.time_decay'] = uni(H, lo=-2, hi=1)
                sd[b + 'att.time_first'] = uni(H, lo=-1, hi=1)
            else:
                sd[b + 'att.time_decay'] = uni(H, S, lo=-2, hi=1)
                sd[b + 'att.time_faaaa'] = uni(H, S, lo=-1, hi=1)
            for x in ('kvrg' if ver == 'v5.2' else 'kvr'):
                sd[b + f'att.time_mix_{x}'] = mix()
            sd[b + 'att.ln_x.weight'] = uni(E, lo=0.7, hi=1.3)
            sd[b + 'att.ln_x.bias'] = rnd(E, scale=0.1)
            for m in (('key', 'value', 'receptance', 'output', 'gate') if ver == 'v5.2' else ('key', 'value', 'receptance', 'output')):
                sd[b + f'att.{m}.weight'] = lin(E, E)
        elif ver == 'v6':
            D, DD = 8, 16
            for x in 'xwkvrg':
                sd[b + f'att.time_maa_{x}'] = mix()
            sd[b + 'att.time_maa_w1'] = rnd(E, 5 * D, scale=0.1)
            sd[b + 'att.time_maa_w2'] = rnd(5, D, E, scale=0.1)
            sd[b + 'att.time_decay'] = uni(1, 1, E, lo=-2, hi=1)
            sd[b + 'att.time_decay_w1'] = rnd(E, DD, scale=0.1)
            sd[b + 'att.time_decay_w2'] = rnd(DD, E, scale=0.1)
            sd[b + 'att.time_faaaa'] = uni(H, S, lo=-1, hi=1)
            for m in ('receptance', 'key', 'value', 'output', 'gate'):
                sd[b + f'att.{m}.weight'] = lin(E, E)
            sd[b + 'att.ln_x.weight'] = uni(E, lo=0.7, hi=1.3)
            sd[b + 'att.ln_x.bias'] = rnd(E, scale=0.1)
        else:  # v7
            DW, DA, DV, DG = 8, 8, 8, 16
            for x in 'rwkvag':
                sd[b + f'att.x_{x}'] = mix()
            sd[b + 'att.w1'] = rnd(E, DW, scale=0.2)
            sd[b + 'att.w2'] = rnd(DW, E, scale=0.2)
            sd[b + 'att.w0'] = uni(1, 1, E, lo=-2, hi=1)
            sd[b + 'att.a1'] = rnd(E, DA, scale=0.2)
            sd[b + 'att.a2'] = rnd(DA, E, scale=0.2)
            sd[b + 'att.a0'] = rnd(1, 1, E, scale=0.5)
            if l > 0:
                sd[b + 'att.v1'] = rnd(E, DV, scale=0.2)
                sd[b + 'att.v2'] = rnd(DV, E, scale=0.2)
                sd[b + 'att.v0'] = rnd(1, 1, E, scale=0.5)
            sd[b + 'att.g1'] = rnd(E, DG, scale=0.2)
            sd[b + 'att.g2'] = rnd(DG, E, scale=0.2)
            sd[b + 'att.k_k'] = uni(1, 1, E, lo=0.5, hi=1.5)
            sd[b + 'att.k_a'] = uni(1, 1, E, lo=0.5, hi=1.5)
            sd[b + 'att.r_k'] = rnd(H, S, scale=0.5)
            for m in ('receptance', 'key', 'value', 'output'):
                sd[b + f'att.{m}.weight'] = lin(E, E)
            sd[b + 'att.ln_x.weight'] = uni(E, lo=0.7, hi=1.3)
            sd[b + 'att.ln_x.bias'] = rnd(E, scale=0.1)
        if ver in ('v4', 'v5.1', 'v5.2'):
            for x in 'kr':
                sd[b + f'ffn.time_mix_{x}'] = mix()
            sd[b + 'ffn.key.weight'] = lin(F, E)
            sd[b + 'ffn.value.weight'] = lin(E, F)
            sd[b + 'ffn.receptance.weight'] = lin(E, E)
            if l == 0:
                ln('ln0')
        elif ver == 'v6':
            for x in 'kr':
                sd[b + f'ffn.time_maa_{x}'] = mix()
            sd[b + 'ffn.key.weight'] = lin(F, E)
            sd[b + 'ffn.receptance.weight'] = lin(E, E)
            sd[b + 'ffn.value.weight'] = lin(E, F)
        else:
            sd[b + 'ffn.x_k'] = mix()
            sd[b + 'ffn.key.weight'] = lin(F, E)
            sd[b + 'ffn.value.weight'] = lin(E, F)
    sd['ln_out.weight'] = uni(E, lo=0.7, hi=1.3)
    sd['ln_out.bias'] = rnd(E, scale=0.1)
    sd['head.weight'] = rnd(V, E, scale=1.0 / E ** 0.5)
    return collections.OrderedDict((k, v.to(c['dtype']).contiguous()) for k, v in sd.items())


def rwkv_cpp_convert(sd, fp16):
    """What rwkv.cpp's convert_pytorch_to_ggml.py writes for `sd` (our port of its behaviour)."""
    emb = sd['emb.weight']
    n_layer = 0
    while f'blocks.{n_layer}.ln1.weight' in sd:
        n_layer += 1
    v5 = 'blocks.0.att.ln_x.weight' in sd
    v5_2 = 'blocks.0.att.gate.weight' in sd
    v6 = 'blocks.0.att.time_maa_x' in sd
    v7 = 'blocks.0.att.k_k' in sd
    if v7:
        merged = collections.OrderedDict()
        for k, t in sd.items():
            if 'att.x_' in k:
                name = f"blocks.{k.split('.')[1]}.att.x_rwkvag"
                merged[name] = torch.cat([merged[name], t], dim=0) if name in merged else t
            else:
                merged[k] = t
        sd = merged
    out = bytearray(struct.pack('=iiiiii', 0x67676d66, 101, emb.shape[0], emb.shape[1], n_layer, 1 if fp16 else 0))
    n_head = sd['blocks.0.att.time_faaaa'].shape[0] if v6 else None
    for k, t in sd.items():
        t = t.float()
        if '.time_' in k:
            t = t.squeeze()
        if v7:
            if any(s in k for s in ('.w1', '.w2', '.a1', '.a2', '.v1', '.v2', '.g1', '.g2')):
                t = t.transpose(0, 1)
        elif v6:
            if '.time_faaaa' in k:
                t = t.unsqueeze(-1)
            if '.time_maa_w1' in k or '.time_decay_w' in k:
                t = t.transpose(0, 1)
            if '.time_maa_w2' in k:
                t = t.transpose(1, 2)
            if '.time_decay' in k and '_w' not in k:
                t = t.reshape(n_head, -1, 1)
        elif v5:
            if '.time_decay' in k:
                t = torch.exp(-torch.exp(t))
                t = t.unsqueeze(-1) if v5_2 else t.reshape(-1, 1, 1)
            if '.time_first' in k:
                t = torch.exp(t).reshape(-1, 1, 1)
            if '.time_faaaa' in k:
                t = t.unsqueeze(-1)
        elif '.time_decay' in k:
            t = -torch.exp(t)
        keep = ('.time_', '.k_k', '.k_a', '.r_k', '.x_rwkvag', '.x_k', '.w0', '.a0', '.v0')
        if fp16 and t.dim() > 1 and not any(s in k for s in keep):
            t = t.half()
        key = k.encode()
        out += struct.pack('=iii', t.dim(), len(key), 1 if t.dtype == torch.float16 else 0)
        for d in reversed(t.shape):
            out += struct.pack('=i', d)
        out += key
        out += t.contiguous().numpy().tobytes()
    return bytes(out)


def forward(ver, sd, c, tokens):
    """Logits after `tokens`, one at a time from the initial state, in float64.

    Follows the official RWKV inference code (ChatRWKV's RNN-mode demos) with rwkv.cpp's
    conventions: layer norms eps 1e-5; ln_x a group norm per head, eps 1e-5 for v5.1/v5.2 (as
    rwkv.cpp; the official v5.2 code divides by 8 first) and 64e-5 for v6/v7."""
    w = {k: v.double() for k, v in sd.items()}
    E, L, S = c['E'], c['L'], c['S']
    H = E // S if S else None
    ln = lambda x, n, eps=1e-5: torch.nn.functional.layer_norm(x, (E,), w[n + '.weight'], w[n + '.bias'], eps)
    gn = lambda x, n, eps: torch.nn.functional.group_norm(x.view(1, E), H, w[n + '.weight'], w[n + '.bias'], eps).view(E)
    att_x = [torch.zeros(E, dtype=torch.float64) for _ in range(L)]
    ffn_x = [torch.zeros(E, dtype=torch.float64) for _ in range(L)]
    if ver == 'v4':
        st = [[torch.zeros(E, dtype=torch.float64), torch.zeros(E, dtype=torch.float64), torch.full((E,), -1e30, dtype=torch.float64)] for _ in range(L)]
    else:
        st = [torch.zeros(H, S, S, dtype=torch.float64) for _ in range(L)]
    for tok in tokens:
        x = ln(w['emb.weight'][tok], 'blocks.0.ln0')
        v_first = None
        for l in range(L):
            b = f'blocks.{l}.'
            a = lambda n: w[b + 'att.' + n]
            xx = ln(x, b + 'ln1')
            prev = att_x[l]
            att_x[l] = xx
            if ver == 'v4':
                mk, mv, mr = a('time_mix_k').flatten(), a('time_mix_v').flatten(), a('time_mix_r').flatten()
                xk, xv, xr = xx * mk + prev * (1 - mk), xx * mv + prev * (1 - mv), xx * mr + prev * (1 - mr)
                r = torch.sigmoid(a('receptance.weight') @ xr)
                k = a('key.weight') @ xk
                v = a('value.weight') @ xv
                aa, bb, pp = st[l]
                ww = a('time_first') + k
                p = torch.maximum(pp, ww)
                e1, e2 = torch.exp(pp - p), torch.exp(ww - p)
                wkv = (e1 * aa + e2 * v) / (e1 * bb + e2)
                ww = pp - torch.exp(a('time_decay'))
                p = torch.maximum(ww, k)
                e1, e2 = torch.exp(ww - p), torch.exp(k - p)
                st[l] = [e1 * aa + e2 * v, e1 * bb + e2, p]
                x = x + a('output.weight') @ (r * wkv)
            elif ver in ('v5.1', 'v5.2'):
                m = lambda n: a('time_mix_' + n).flatten()
                mix = lambda n: xx * m(n) + prev * (1 - m(n))
                r = (a('receptance.weight') @ mix('r')).view(H, 1, S)
                k = (a('key.weight') @ mix('k')).view(H, S, 1)
                v = (a('value.weight') @ mix('v')).view(H, 1, S)
                if ver == 'v5.1':
                    decay = torch.exp(-torch.exp(a('time_decay'))).view(H, 1, 1)
                    u = torch.exp(a('time_first')).view(H, 1, 1)
                else:
                    decay = torch.exp(-torch.exp(a('time_decay'))).view(H, S, 1)
                    u = a('time_faaaa').view(H, S, 1)
                kv = k @ v
                out = (r @ (u * kv + st[l])).view(E)
                st[l] = kv + decay * st[l]
                out = gn(out, b + 'att.ln_x', 1e-5)
                if ver == 'v5.2':
                    out = out * torch.nn.functional.silu(a('gate.weight') @ mix('g'))
                x = x + a('output.weight') @ out
            elif ver == 'v6':
                sx = prev - xx
                xxx = xx + sx * a('time_maa_x').flatten()
                xxx = torch.tanh(xxx @ a('time_maa_w1')).view(5, 1, -1)
                xxx = torch.bmm(xxx, a('time_maa_w2')).view(5, E)
                mw, mk, mv, mr, mg = xxx.unbind(0)
                xw = xx + sx * (a('time_maa_w').flatten() + mw)
                xk = xx + sx * (a('time_maa_k').flatten() + mk)
                xv = xx + sx * (a('time_maa_v').flatten() + mv)
                xr = xx + sx * (a('time_maa_r').flatten() + mr)
                xg = xx + sx * (a('time_maa_g').flatten() + mg)
                r = (a('receptance.weight') @ xr).view(H, 1, S)
                k = (a('key.weight') @ xk).view(H, S, 1)
                v = (a('value.weight') @ xv).view(H, 1, S)
                g = torch.nn.functional.silu(a('gate.weight') @ xg)
                dw = a('time_decay').flatten() + torch.tanh(xw @ a('time_decay_w1')) @ a('time_decay_w2')
                decay = torch.exp(-torch.exp(dw)).view(H, S, 1)
                u = a('time_faaaa').view(H, S, 1)
                kv = k @ v
                out = (r @ (u * kv + st[l])).view(E)
                st[l] = kv + decay * st[l]
                x = x + a('output.weight') @ (gn(out, b + 'att.ln_x', 64e-5) * g)
            else:  # v7
                d = prev - xx
                f = lambda n: a(n).flatten()
                xr, xw, xk, xv, xa, xg = (xx + d * f('x_' + n) for n in 'rwkvag')
                r = a('receptance.weight') @ xr
                ww = torch.tanh(xw @ a('w1')) @ a('w2')
                k = a('key.weight') @ xk
                v = a('value.weight') @ xv
                aa = torch.sigmoid(f('a0') + (xa @ a('a1')) @ a('a2'))
                g = torch.sigmoid(xg @ a('g1')) @ a('g2')
                kk = torch.nn.functional.normalize((k * f('k_k')).view(H, S), dim=-1, p=2.0).view(E)
                k = k * (1 + (aa - 1) * f('k_a'))
                if l == 0:
                    v_first = v
                else:
                    v = v + (v_first - v) * torch.sigmoid(f('v0') + (xv @ a('v1')) @ a('v2'))
                decay = torch.exp(-torch.exp(torch.tensor(-0.5, dtype=torch.float64)) * torch.sigmoid(f('w0') + ww))
                vk = v.view(H, S, 1) @ k.view(H, 1, S)
                ab = (-kk).view(H, S, 1) @ (kk * aa).view(H, 1, S)
                st[l] = st[l] * decay.view(H, 1, S) + st[l] @ ab + vk
                out = (st[l] @ r.view(H, S, 1)).view(E)
                out = gn(out, b + 'att.ln_x', 64e-5)
                out = out + ((r * k * a('r_k').flatten()).view(H, S).sum(dim=-1, keepdim=True) * v.view(H, S)).view(E)
                x = x + a('output.weight') @ (out * g)
            xx = ln(x, b + 'ln2')
            prev = ffn_x[l]
            ffn_x[l] = xx
            fw = lambda n: w[b + 'ffn.' + n]
            if ver in ('v4', 'v5.1', 'v5.2', 'v6'):
                if ver == 'v6':
                    xk = xx + (prev - xx) * fw('time_maa_k').flatten()
                    xr = xx + (prev - xx) * fw('time_maa_r').flatten()
                else:
                    mk, mr = fw('time_mix_k').flatten(), fw('time_mix_r').flatten()
                    xk, xr = xx * mk + prev * (1 - mk), xx * mr + prev * (1 - mr)
                r = torch.sigmoid(fw('receptance.weight') @ xr)
                k = torch.relu(fw('key.weight') @ xk) ** 2
                x = x + r * (fw('value.weight') @ k)
            else:
                xk = xx + (prev - xx) * fw('x_k').flatten()
                x = x + fw('value.weight') @ (torch.relu(fw('key.weight') @ xk) ** 2)
    return (w['head.weight'] @ ln(x, 'ln_out')).float()


def big(path, n_embed, n_layer, n_vocab):
    """A random-weight v7 checkpoint in bf16 (like the official ones), for memory measurements."""
    c = dict(E=n_embed, L=n_layer, V=n_vocab, F=4 * n_embed, S=64, dtype=torch.bfloat16)
    torch.save(state_dict('v7', c), path)
    print(path, os.path.getsize(path), 'bytes')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('out', nargs='?', default=os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'checkpoints'))
    p.add_argument('--big')
    p.add_argument('--n-embed', type=int, default=1024)
    p.add_argument('--n-layer', type=int, default=24)
    p.add_argument('--n-vocab', type=int, default=65536)
    args = p.parse_args()
    if args.big:
        return big(args.big, args.n_embed, args.n_layer, args.n_vocab)
    from safetensors.torch import save_file
    os.makedirs(args.out, exist_ok=True)
    for ver, c in CONFIGS.items():
        sd = state_dict(ver, c)
        base = os.path.join(args.out, ver)
        torch.save(sd, base + '.pth')
        save_file(sd, base + '.safetensors')
        for fp16, name in ((False, 'FP32'), (True, 'FP16')):
            with open(f'{base}-{name}.bin', 'wb') as f:
                f.write(rwkv_cpp_convert(sd, fp16))
        logits = forward(ver, sd, c, TOKENS)
        with open(base + '-logits.bin', 'wb') as f:
            f.write(logits.numpy().astype('<f4').tobytes())
        print(ver, 'ok', [round(float(x), 4) for x in logits[:4]])
    # Views: torch.save keeps a view's storage, offset and strides.
    sd = state_dict('v4', CONFIGS['v4'], seed=2)
    E, F = CONFIGS['v4']['E'], CONFIGS['v4']['F']
    sd['head.weight'] = sd['head.weight'].t().contiguous().t()
    shared = torch.cat([sd['blocks.0.ffn.key.weight'].flatten(), sd['blocks.0.ffn.value.weight'].flatten()])
    sd['blocks.0.ffn.key.weight'] = shared[:F * E].view(F, E)
    sd['blocks.0.ffn.value.weight'] = shared[F * E:].view(E, F)
    assert not sd['head.weight'].is_contiguous()
    torch.save(sd, os.path.join(args.out, 'views.pth'))
    with open(os.path.join(args.out, 'views-FP16.bin'), 'wb') as f:
        f.write(rwkv_cpp_convert(sd, True))


if __name__ == '__main__':
    sys.exit(main())
