"""Several processes and devices through the real main job: 2 processes on localhost (gloo CPU
collectives) agree on the loss; 8 forced CPU devices on a data 2 x fsdp 2 x tensor 2 mesh match
the 1-device run.

Both start fresh Python processes: the number of CPU devices and the distributed runtime must
be fixed before JAX starts its backend, which this pytest process has already done.
"""

from __future__ import annotations

import re
import socket
import subprocess

import numpy as np

from tests.train import helpers


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_train_on_one_mesh_and_agree_on_the_loss(tmp_path):
  config = helpers.tiny_config(num_train_steps=6, checkpoint_every_steps=3, eval_every_steps=3)
  config.stages = 'pretrain'
  work = helpers.workdir_with_data(tmp_path)
  address = f'localhost:{_free_port()}'
  # Output goes to files: a full pipe would block one process inside a collective.
  logs = [(open(tmp_path / f'out{i}', 'w+'), open(tmp_path / f'err{i}', 'w+')) for i in range(2)]
  procs = [subprocess.Popen(
      helpers.main_command(work, config, [f'--coordinator_address={address}',
                                          '--num_processes=2', f'--process_id={i}']),
      cwd=helpers.REPO, env=helpers.subprocess_env(), stdout=out, stderr=err, text=True)
      for i, (out, err) in enumerate(logs)]
  try:
    for p in procs:
      p.wait(timeout=300)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  outs = []
  for out, err in logs:
    out.seek(0)
    err.seek(0)
    outs.append((out.read(), err.read()))
    out.close()
    err.close()
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  # Process 0 prints and writes the logs; process 1 only logs the same lines through absl.
  assert "over 2 process(es)" in outs[0][0] and "'fsdp': 2" in outs[0][0]
  logged = {int(s): v for s, v in re.findall(r'\[pretrain\] step (\d+)/6 loss (\S+)', outs[1][1])}
  written = helpers.losses(work)
  assert sorted(logged) == sorted(written) == list(range(1, 7))
  assert all(f'{written[s]:.4f}' == logged[s] for s in written)
  assert written[6] < written[1]
  data = work / 'pretrain' / 'checkpoints' / '6' / 'data'
  assert sorted(p.name for p in data.glob('process_*.json')) == [
      'process_0-of-2.json', 'process_1-of-2.json']
  assert helpers.losses(work, key='eval_loss')


def test_eight_devices_on_a_2x2x2_mesh_match_one_device(tmp_path):
  config = helpers.reference_config()
  config.mesh.update(data=2, fsdp=2, tensor=2)
  work = helpers.workdir_with_data(tmp_path)
  r = helpers.run_main(work, config, devices=8)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "{'data': 2, 'fsdp': 2, 'tensor': 2}" in r.stdout
  reference = helpers.reference_run()
  for key in ('loss', 'loss_pitch', 'eval_loss'):
    want, got = helpers.losses(reference, key=key), helpers.losses(work, key=key)
    assert sorted(got) == sorted(want)
    np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                               rtol=1e-4)
