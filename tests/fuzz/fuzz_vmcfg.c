/*
 * fuzz_vmcfg.c - libFuzzer target: the VM configuration parser
 * (hypervisor/vmcfg.c, what vcvm reads from <vm>/vm.json).  Input: the JSON
 * document.  A document that parses and validates must survive a round trip:
 * written back with vcvm_cfg_to_json, it parses and validates again and is
 * written identically (the parser and the writer agree).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hypervisor/vmcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dump(const struct vcvm_cfg *c)
{
	json_t *j = vcvm_cfg_to_json(c);
	char *s;

	if (!j)
		abort();
	s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcvm_cfg c, c2;
	json_error_t jerr;
	char why[512];
	json_t *root, *again;
	char *s1, *s2;

	if (size > 65536)
		return 0;
	root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return 0;
	memset(&c, 0, sizeof(c));
	if (vcvm_cfg_from_json(root, &c, why, sizeof(why))) {
		json_decref(root);
		vcvm_cfg_free(&c);
		return 0;
	}
	json_decref(root);
	if (vcvm_cfg_validate(&c, why, sizeof(why))) {
		fprintf(stderr, "parsed but does not validate: %s\n", why);
		abort();
	}
	s1 = dump(&c);
	if (!s1)
		abort();
	again = json_loads(s1, JSON_REJECT_DUPLICATES, &jerr);
	if (!again) {
		fprintf(stderr, "written config does not parse: %s\n%s\n", jerr.text, s1);
		abort();
	}
	memset(&c2, 0, sizeof(c2));
	if (vcvm_cfg_from_json(again, &c2, why, sizeof(why))) {
		fprintf(stderr, "written config refused: %s\n%s\n", why, s1);
		abort();
	}
	json_decref(again);
	s2 = dump(&c2);
	if (!s2 || strcmp(s1, s2)) {
		fprintf(stderr, "round trip changed the config:\n%s\n%s\n", s1, s2 ? s2 : "");
		abort();
	}
	free(s1);
	free(s2);
	vcvm_cfg_free(&c);
	vcvm_cfg_free(&c2);
	return 0;
}
