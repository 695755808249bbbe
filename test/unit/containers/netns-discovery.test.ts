// SPDX-License-Identifier: Apache-2.0
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { netnsPinsFromMountinfo } from '../../../src/containers/netns-discovery.js';

describe('netnsPinsFromMountinfo', () => {
  it('finds nsfs mounts of network namespaces (ip netns add, docker, CNI), decodes escaped mount points, ignores the rest', () => {
    const text = [
      '25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
      '612 30 0:4 net:[4026532490] /run/netns/blue rw shared:5 - nsfs nsfs rw',
      '613 30 0:4 net:[4026532491] /run/docker/netns/1a2b3c4d rw shared:5 - nsfs nsfs rw',
      '614 30 0:4 net:[4026532492] /run/netns/with\\040space rw - nsfs nsfs rw',
      '615 30 0:4 mnt:[4026532493] /run/pinned-mnt rw - nsfs nsfs rw',
      '616 30 0:4 net:[4026532494] /run/netns/optional rw shared:5 master:1 - nsfs nsfs rw',
      '',
    ].join('\n');
    assert.deepEqual([...netnsPinsFromMountinfo(text)], [
      [4026532490, '/run/netns/blue'],
      [4026532491, '/run/docker/netns/1a2b3c4d'],
      [4026532492, '/run/netns/with space'],
      [4026532494, '/run/netns/optional'],
    ]);
  });
});
