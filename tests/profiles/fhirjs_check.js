// Loads FHIR resources with FHIR.js (the npm package `fhir`), an implementation independent of
// this server: StructureDefinitions and ValueSets are parsed into its conformance model, and
// every resource is validated as R4. Prints one JSON line per file.
const fs = require('fs');
const { Fhir, ParseConformance, Versions } = require('fhir');

const conformance = new ParseConformance(true, Versions.R4);
const fhir = new Fhir(conformance);
for (const file of process.argv.slice(2)) {
  const out = { file, parsed: null, valid: false, errors: [] };
  try {
    const resource = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (resource.resourceType === 'StructureDefinition') {
      conformance.parseStructureDefinition(resource);
      const parsed = conformance.parsedStructureDefinitions[resource.id];
      out.parsed = parsed ? Object.keys(parsed._properties || {}).length : 0;
    } else if (resource.resourceType === 'ValueSet') {
      conformance.parseValueSet(resource);
      out.parsed = 1;
    }
    const result = fhir.validate(resource, { errorOnUnexpected: true });
    out.valid = result.valid;
    out.errors = result.messages.filter(m => m.severity === 'error' || m.severity === 'fatal')
      .map(m => `${m.location}: ${m.message}`);
  } catch (e) {
    out.errors = [String(e)];
  }
  console.log(JSON.stringify(out));
}
