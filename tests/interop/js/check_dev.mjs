// Reads the server's GET /dev the way the official JS SDK's functions suite does
// (`checkIntrospection` in packages/inngest/src/test/helpers.ts): it parses the answer
// with zod, which drops keys it does not know, then looks for each expected function by
// name, exact triggers, and a step {id: "step", name: "step", uri: ...?fnId=<app>-<fn>&stepId=step}.
//
//   node check_dev.mjs <server origin> '<[{"name", "slug", "triggers"}, ...]>'
//
// Exits 0 when every expected function is there; otherwise prints what it got and exits 1.
import { isDeepStrictEqual } from "node:util";
import { z } from "zod/v3";

const [origin, expectedJson] = process.argv.slice(2);
const expected = JSON.parse(expectedJson);

const devInfo = z.object({
  functions: z.array(
    z.object({
      name: z.string(),
      id: z.string(),
      triggers: z.array(z.object({ event: z.string() }).or(z.object({ cron: z.string() }))),
      steps: z.array(z.object({ id: z.string(), name: z.string(), uri: z.string().url() })),
    }),
  ),
});

const response = await fetch(`${origin}/dev`);
const parsed = devInfo.safeParse(await response.json());
if (!parsed.success) {
  console.error(`GET /dev does not have the shape the JS SDK reads: ${parsed.error.message}`);
  process.exit(1);
}

const missing = expected.filter(({ name, slug, triggers }) => {
  const uri = new RegExp(`^http.+\\?fnId=.+-${slug}&stepId=step$`);
  return !parsed.data.functions.some(
    (fn) =>
      fn.name === name &&
      isDeepStrictEqual(fn.triggers, triggers) &&
      fn.steps.some((s) => s.id === "step" && s.name === "step" && uri.test(s.uri)),
  );
});
if (missing.length > 0) {
  console.error(`not found: ${JSON.stringify(missing)}`);
  console.error(`GET /dev listed: ${JSON.stringify(parsed.data.functions, null, 2)}`);
  process.exit(1);
}
console.log(`GET /dev lists ${expected.length} functions as the JS SDK reads them`);
