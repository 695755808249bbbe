// SPDX-License-Identifier: Apache-2.0
/** Every gadget's definition, by name: what front ends (CLI, agent, UI) offer and run. */
import { captureDefinition } from './capture/definition.js';
import type { GadgetDefinition } from './definition.js';
import { sniDefinition } from './sni/definition.js';
import { tlsDefinition } from './tls/definition.js';

export const gadgets: Readonly<Record<string, GadgetDefinition<any, any>>> = {
  [sniDefinition.name]: sniDefinition,
  [tlsDefinition.name]: tlsDefinition,
  [captureDefinition.name]: captureDefinition,
};

export function gadgetByName(name: string): GadgetDefinition<any, any> | undefined {
  return gadgets[name];
}
