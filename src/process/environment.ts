// The environment a command starts with: never the daemon's own (which may hold the
// builder's configuration paths or a service manager's variables), always these.

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function defaultEnv(): Record<string, string> {
  return { PATH: DEFAULT_PATH, HOME: process.env.HOME ?? "/", LANG: "C.UTF-8" };
}
