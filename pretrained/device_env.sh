# Sourced by the GPU-session scripts: makes `ipvae` importable on the device tool's machine without
# installing it (python3 there is 3.12 with its own torch; the package-dir mapping of pyproject.toml
# becomes symbolic links; ipvae/data is copied with ipvae/) and the bundled MNIST pickle reachable (carried under .devcarry/site).
REPO=$PWD
WORK=${WORK:-$REPO/out/gpu_work}
PY=${PY:-python3}
SHIM=$WORK/shim
rm -rf "$SHIM" && mkdir -p "$SHIM/ipvae"
cp -r "$REPO"/ipvae/. "$SHIM/ipvae/"
ln -s "$REPO/train" "$SHIM/ipvae/train"
ln -s "$REPO/export" "$SHIM/ipvae/export"
ln -s "$REPO/lava_models" "$SHIM/ipvae/lava"
export PYTHONPATH=$SHIM:$REPO/.devcarry/site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1  # 3.11+: the repo's own ipvae/ folder must not shadow the shim
ipvae() { "$PY" -m ipvae.cli "$@"; }
nvidia-smi -L 2>/dev/null
"$PY" -c "import torch, numpy, ipvae, ipvae.train.trainer; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0), 'ipvae', ipvae.__file__)" || exit 1
