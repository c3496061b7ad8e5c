// One lint gate for sources, tests, harness and benchmarks.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "var/", "bench/results/", ".cache/"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: {
      globals: { process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly" },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-console": ["error", { allow: ["error"] }],
    },
  },
  {
    files: ["test/**", "harness/**", "bench/**", "scripts/**"],
    rules: { "no-console": "off" },
  },
  {
    // Every process the builder starts goes through the one runner, which alone may spawn:
    // isolation, output scrubbing and the kill that reaches every descendant live there.
    files: ["src/**"],
    ignores: ["src/process/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        ...["node:child_process", "child_process", "execa"].map((name) => ({
          name,
          message:
            "start processes through the ProcessRunner (src/process/runner.ts) you are given",
        })),
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "ImportExpression[source.value=/^(node:)?child_process$|^execa$/]",
          message:
            "start processes through the ProcessRunner (src/process/runner.ts) you are given",
        },
      ],
    },
  },
);
