// The build types this builder runs, in the order info() lists them.

import type { BuildType } from "./buildtype.js";
import { binaryPackageBuildType } from "./binarypackage.js";
import { scriptBuildType } from "./script.js";

export class BuildTypeRegistry {
  private readonly types = new Map<string, BuildType>();

  register<A>(type: BuildType<A>): void {
    this.types.set(type.name, type as unknown as BuildType);
  }

  get(name: string): BuildType | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }
}

export function defaultRegistry(): BuildTypeRegistry {
  const registry = new BuildTypeRegistry();
  registry.register(binaryPackageBuildType);
  registry.register(scriptBuildType);
  return registry;
}
