/* tests/engine/test_keys.c -- engine/keys.c: every case of Event.body has a
 * key class (the table is complete), and the classes are docs/keys.md's. */
#include <criterion/criterion.h>

#include "engine/engine_int.h"
#include "storage/keyring.h"

Test(keys, every_kind_of_event_body_has_a_class)
{
    const ProtobufCMessageDescriptor *d = &suiro__v1__event__descriptor;
    unsigned kinds = 0, per[SR_KC_COUNT] = {0};
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) continue;
        int c = sr__key_class((int)f->id);
        cr_assert(c >= SR_KC_DATA && c <= SR_KC_CONFIG, "Event.%s (case %u) has no key class in SR_KEY_CLASSES (engine/keys.c)",
                  f->name, f->id);
        per[c]++;
        kinds++;
    }
    cr_assert_eq(kinds, per[SR_KC_DATA] + per[SR_KC_AUDIT] + per[SR_KC_CONFIG]);
    cr_assert(per[SR_KC_DATA] && per[SR_KC_AUDIT] && per[SR_KC_CONFIG]);
    cr_assert_eq(sr__key_class(1), -1, "a number that is not a case has no class");
    cr_assert_eq(sr__key_class(-1), -1);
    cr_assert_eq(sr__key_class(100000), -1);
}

/* docs/keys.md's table, spot by spot: what the index needs for as long as
 * the operator exists is config; logins and key events are audit; values,
 * documents and files are data. */
Test(keys, the_classes_of_docs_keys_md)
{
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_MEASUREMENTS), SR_KC_DATA);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_CORRECTION), SR_KC_DATA);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_DOC_PUT), SR_KC_DATA);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_FILE_PUT), SR_KC_DATA);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT), SR_KC_DATA);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_AUTH), SR_KC_AUDIT);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_KEY), SR_KC_AUDIT);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_ADMIN), SR_KC_AUDIT);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_MASTER_PUT), SR_KC_CONFIG);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_REGISTRY_PUT), SR_KC_CONFIG);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_USER), SR_KC_CONFIG);
    cr_assert_eq(sr__key_class(SUIRO__V1__EVENT__BODY_BACKUP), SR_KC_CONFIG);
}
