/*
 * The C device library (firmware/lib) built for the host, for Python.
 *
 * paygkit.device.cfirmware.CFirmware runs the library's device logic
 * (pgk_device.c, with pgk_token, pgk_siphash and pgk_storage) in place of
 * paygkit's Firmware model: the same code a product links, on the ports of
 * a Python device.  This file is the product's side of firmware/lib/pgk_port.h
 * for such a device:
 *   - non-volatile memory: read() and write() of a paygkit Memory object
 *     (RamMemory, FileMemory, or a test's power-cut memory);
 *   - RTC and uptime: the instant CFirmware read from its Python clocks just
 *     before the call, so that one call sees one instant, as Firmware's do;
 *   - feedback: a Python callable given with the call, (kind, detail, value);
 *   - the output switch: kept for the `output` attribute.
 * It exposes the device API as the type Device (types in _cfirmware.pyi);
 * CFirmware turns its codes into paygkit's objects and texts.
 *
 * The port functions take no context pointer, so the call being handled is
 * found through `current`, one per thread: a memory's write may release the
 * GIL (FileMemory's fsync), and another thread may then run another device.
 *
 * An exception raised by a Python port (a power cut, a full disk, a feedback
 * sink that fails) cannot unwind through the library.  The port reports a
 * failure to the library instead, keeps the exception, and the call raises
 * it once the library returns.  From the first exception on, the call
 * writes nothing more and gives no more feedback, as a Python method stops
 * at its exception: a save the library then attempts fails, and the library
 * reloads what the memory holds.  Reads still go through, so that reload
 * finds the state the memory really keeps.
 *
 * Built twice by setup.py, as the options of firmware/lib/pgk_config.h are
 * compile-time: _cfirmware (the reset token refused, as paygkit's default
 * DeviceConfig) and _cfirmware_workshop (PGK_ACCEPT_RESET_TOKEN 1).  Each is
 * compiled with -fvisibility=hidden so that the two copies of the library do
 * not see each other's symbols.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pgk_device.h"

#if PGK_ACCEPT_RESET_TOKEN
#define MODULE_NAME "_cfirmware_workshop"
#define MODULE_INIT PyInit__cfirmware_workshop
#else
#define MODULE_NAME "_cfirmware"
#define MODULE_INIT PyInit__cfirmware
#endif

#if PGK_NV_NEEDS_ERASE
#error "paygkit's Memory rewrites bytes in place: build without PGK_NV_NEEDS_ERASE"
#endif

typedef struct {
    PyObject_HEAD
    pgk_firmware firmware;
    PyObject *memory;
    uint8_t output;
    /* A library call is running on this device (in this thread or another). */
    uint8_t busy;
} DeviceObject;

/* One call into the library: the instant it runs at, where its feedback
 * goes, and the first Python exception a port raised during it. */
typedef struct call {
    DeviceObject *device;
    PyObject *on_feedback; /* a callable, or None */
    int64_t rtc;
    uint32_t uptime;
    PyObject *error_type;
    PyObject *error_value;
    PyObject *error_traceback;
    struct call *outer; /* a call on another device that this one runs inside (a callback) */
} call;

static _Thread_local call *current;

/* Keeps the Python error just raised, unless an earlier one is kept: that one
 * stopped the call, the later ones only followed from it.  Returns the
 * failure the port answers. */
static int keep_error(call *running)
{
    if (running->error_type == NULL) {
        PyErr_Fetch(&running->error_type, &running->error_value, &running->error_traceback);
    } else {
        PyErr_Clear();
    }
    return -1;
}

/* ==== the port (firmware/lib/pgk_port.h) ==================================== */

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    call *running = current;
    if (running == NULL) {
        return -1;
    }
    PyObject *data = PyObject_CallMethod(running->device->memory, "read", "kn",
                                         (unsigned long)offset, (Py_ssize_t)length);
    if (data == NULL) {
        return keep_error(running);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(data);
        return keep_error(running);
    }
    int result = 0;
    if ((size_t)view.len == length) {
        memcpy(buffer, view.buf, length);
    } else {
        PyErr_Format(PyExc_ValueError,
                     "the memory read %zd bytes at offset %lu where %zu were asked for",
                     view.len, (unsigned long)offset, length);
        result = keep_error(running);
    }
    PyBuffer_Release(&view);
    Py_DECREF(data);
    return result;
}

int pgk_port_nv_write(uint32_t offset, const void *data, size_t length)
{
    call *running = current;
    if (running == NULL || running->error_type != NULL) {
        return -1;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)length);
    if (bytes == NULL) {
        return keep_error(running);
    }
    PyObject *done = PyObject_CallMethod(running->device->memory, "write", "kO",
                                         (unsigned long)offset, bytes);
    Py_DECREF(bytes);
    if (done == NULL) {
        return keep_error(running);
    }
    Py_DECREF(done);
    return 0;
}

int64_t pgk_port_rtc_seconds(void)
{
    return current != NULL ? current->rtc : 0;
}

uint32_t pgk_port_uptime_seconds(void)
{
    return current != NULL ? current->uptime : 0;
}

void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    call *running = current;
    if (running == NULL || running->error_type != NULL || running->on_feedback == Py_None) {
        return;
    }
    PyObject *done = PyObject_CallFunction(running->on_feedback, "iiL", (int)kind, (int)detail,
                                           (long long)value);
    if (done == NULL) {
        keep_error(running);
        return;
    }
    Py_DECREF(done);
}

void pgk_port_output(uint8_t on)
{
    if (current != NULL) {
        current->device->output = on;
    }
}

/* ==== calls ================================================================= */

/* Starts a call that may change the device; 0 (with an exception set) when
 * one is already running on it: the library is not reentrant. */
static int begin(call *running, DeviceObject *device, PyObject *on_feedback, int64_t rtc,
                 uint32_t uptime)
{
    if (device->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the C firmware is already handling a call on this device: a port "
                        "or feedback callback may not call into the device that called it");
        return 0;
    }
    if (on_feedback != Py_None && !PyCallable_Check(on_feedback)) {
        PyErr_SetString(PyExc_TypeError, "on_feedback must be callable or None");
        return 0;
    }
    memset(running, 0, sizeof *running);
    running->device = device;
    running->on_feedback = on_feedback;
    running->rtc = rtc;
    running->uptime = uptime;
    running->outer = current;
    device->busy = 1;
    current = running;
    return 1;
}

/* Ends a call; 0 when a port raised, whose exception is then set again. */
static int end(call *running)
{
    current = running->outer;
    running->device->busy = 0;
    if (running->error_type == NULL) {
        return 1;
    }
    PyErr_Restore(running->error_type, running->error_value, running->error_traceback);
    return 0;
}

/* The instant arguments every call starts with: the RTC (any 64-bit time, as
 * the default build takes) and the uptime in seconds. */
static int parse_instant(PyObject *rtc_object, PyObject *uptime_object, int64_t *rtc,
                         uint32_t *uptime)
{
    long long rtc_value = PyLong_AsLongLong(rtc_object);
    if (rtc_value == -1 && PyErr_Occurred()) {
        return 0;
    }
    unsigned long long uptime_value = PyLong_AsUnsignedLongLong(uptime_object);
    if (uptime_value == (unsigned long long)-1 && PyErr_Occurred()) {
        return 0;
    }
    if (uptime_value > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "the C firmware counts uptime in 32 bits (about 136 years)");
        return 0;
    }
    *rtc = (int64_t)rtc_value;
    *uptime = (uint32_t)uptime_value;
    return 1;
}

static PyObject *outcome_tuple(const pgk_outcome *outcome)
{
    return Py_BuildValue("(iiikkk)", (int)outcome->kind, (int)outcome->token_type,
                         (int)outcome->test_code_limit, (unsigned long)outcome->units,
                         (unsigned long)outcome->count, (unsigned long)outcome->wait_seconds);
}

/* ==== the Device type ======================================================= */

static int Device_init(DeviceObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"memory", NULL};
    PyObject *memory;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Device", names, &memory)) {
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the device is handling a call");
        return -1;
    }
    Py_INCREF(memory);
    Py_XSETREF(self->memory, memory);
    memset(&self->firmware, 0, sizeof self->firmware);
    self->output = 0;
    return 0;
}

static int Device_traverse(DeviceObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->memory);
    return 0;
}

static int Device_clear(DeviceObject *self)
{
    Py_CLEAR(self->memory);
    return 0;
}

static void Device_dealloc(DeviceObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Device_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int has_memory(DeviceObject *self)
{
    if (self->memory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the device was not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Device_power_on(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object, *on_feedback;
    int waiting, lock;
    unsigned int timeout;
    int64_t rtc;
    uint32_t uptime;
    call running;
    if (!PyArg_ParseTuple(args, "OOOppI:power_on", &rtc_object, &uptime_object, &on_feedback,
                          &waiting, &lock, &timeout) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime) || !has_memory(self)) {
        return NULL;
    }
    if (timeout < 1 || timeout > UINT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "the keypad timeout must be 1 to 65535 seconds");
        return NULL;
    }
    pgk_firmware_config config = {(uint8_t)waiting, (uint8_t)lock, (uint16_t)timeout};
    if (!begin(&running, self, on_feedback, rtc, uptime)) {
        return NULL;
    }
    pgk_storage_result result = pgk_firmware_power_on(&self->firmware, &config);
    if (!end(&running)) {
        return NULL;
    }
    return PyLong_FromLong((long)result);
}

static PyObject *Device_provision(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object, *on_feedback;
    const char *serial, *key, *test_code;
    Py_ssize_t serial_length, key_length, test_code_length;
    unsigned long starting_code, count;
    unsigned int divider;
    int restricted;
    int64_t rtc;
    uint32_t uptime;
    call running;
    if (!PyArg_ParseTuple(args, "OOOy#y#kIpz#k:provision", &rtc_object, &uptime_object,
                          &on_feedback, &serial, &serial_length, &key, &key_length,
                          &starting_code, &divider, &restricted, &test_code, &test_code_length,
                          &count) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime) || !has_memory(self)) {
        return NULL;
    }
    /* The library checks the values; only what its types cannot hold is refused here. */
    if (serial_length > UINT8_MAX || key_length != 16 || starting_code > UINT32_MAX ||
        divider > UINT8_MAX || test_code_length > UINT8_MAX || count > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "provisioning data out of the C firmware's range (the serial and the "
                        "test code at most 255 bytes, a 16-byte key, 32-bit numbers, a time "
                        "divider up to 255)");
        return NULL;
    }
    pgk_provisioning provisioning;
    memset(&provisioning, 0, sizeof provisioning);
    provisioning.serial = serial;
    provisioning.serial_length = (uint8_t)serial_length;
    memcpy(provisioning.key, key, sizeof provisioning.key);
    provisioning.starting_code = (uint32_t)starting_code;
    provisioning.time_divider = (uint8_t)divider;
    provisioning.restricted_digits = (uint8_t)restricted;
    provisioning.test_code = test_code;
    provisioning.test_code_length = test_code != NULL ? (uint8_t)test_code_length : 0;
    provisioning.count = (uint32_t)count;
    if (!begin(&running, self, on_feedback, rtc, uptime)) {
        return NULL;
    }
    pgk_provision_result result = pgk_firmware_provision(&self->firmware, &provisioning);
    if (!end(&running)) {
        return NULL;
    }
    return PyLong_FromLong((long)result);
}

static PyObject *Device_enter_token(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object, *on_feedback;
    const char *digits;
    Py_ssize_t length;
    int64_t rtc;
    uint32_t uptime;
    call running;
    pgk_outcome outcome;
    if (!PyArg_ParseTuple(args, "OOOy#:enter_token", &rtc_object, &uptime_object, &on_feedback,
                          &digits, &length) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime) || !has_memory(self)) {
        return NULL;
    }
    if (length > UINT8_MAX) {
        PyErr_SetString(PyExc_ValueError, "the C firmware takes at most 255 digits at once");
        return NULL;
    }
    if (!begin(&running, self, on_feedback, rtc, uptime)) {
        return NULL;
    }
    pgk_firmware_enter_token(&self->firmware, digits, (uint8_t)length, &outcome);
    if (!end(&running)) {
        return NULL;
    }
    return outcome_tuple(&outcome);
}

static PyObject *Device_press(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object, *on_feedback;
    int key;
    int64_t rtc;
    uint32_t uptime;
    call running;
    pgk_outcome outcome;
    if (!PyArg_ParseTuple(args, "OOOC:press", &rtc_object, &uptime_object, &on_feedback, &key) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime) || !has_memory(self)) {
        return NULL;
    }
    if (key > 0x7F) {
        PyErr_SetString(PyExc_ValueError, "a keypad key is one ASCII character");
        return NULL;
    }
    if (!begin(&running, self, on_feedback, rtc, uptime)) {
        return NULL;
    }
    pgk_press_result pressed = pgk_firmware_press(&self->firmware, (char)key, &outcome);
    if (!end(&running)) {
        return NULL;
    }
    if (pressed != PGK_PRESS_TOKEN) {
        return Py_BuildValue("(iO)", (int)pressed, Py_None);
    }
    PyObject *result = outcome_tuple(&outcome);
    if (result == NULL) {
        return NULL;
    }
    return Py_BuildValue("(iN)", (int)pressed, result);
}

static PyObject *Device_poll(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object, *on_feedback;
    int64_t rtc;
    uint32_t uptime;
    call running;
    if (!PyArg_ParseTuple(args, "OOO:poll", &rtc_object, &uptime_object, &on_feedback) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime) || !has_memory(self)) {
        return NULL;
    }
    if (!begin(&running, self, on_feedback, rtc, uptime)) {
        return NULL;
    }
    pgk_firmware_poll(&self->firmware);
    if (!end(&running)) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Device_status(DeviceObject *self, PyObject *args)
{
    PyObject *rtc_object, *uptime_object;
    int64_t rtc;
    uint32_t uptime;
    pgk_firmware_status_info status;
    if (!PyArg_ParseTuple(args, "OO:status", &rtc_object, &uptime_object) ||
        !parse_instant(rtc_object, uptime_object, &rtc, &uptime)) {
        return NULL;
    }
    /* Only reads, and calls no Python port: safe also from inside a callback,
     * as long as the caller's instant is restored after it. */
    call reading;
    memset(&reading, 0, sizeof reading);
    reading.device = self;
    reading.on_feedback = Py_None;
    reading.rtc = rtc;
    reading.uptime = uptime;
    reading.outer = current;
    current = &reading;
    pgk_firmware_status(&self->firmware, &status);
    current = reading.outer;
    return Py_BuildValue("(LLLkkkiiiiiii)", (long long)status.now,
                         (long long)status.active_until, (long long)status.seconds_left,
                         (unsigned long)status.count, (unsigned long)status.invalid_attempts,
                         (unsigned long)status.blocked_seconds, (int)status.provisioned,
                         (int)status.active, (int)status.payg_enabled, (int)status.test_active,
                         (int)status.tamper, (int)status.restricted_digits,
                         (int)status.time_divider);
}

static PyObject *Device_state_record(DeviceObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Only the payload is read back (decode_record), so any sequence number does. */
    uint8_t record[PGK_STORAGE_MAX_RECORD_SIZE];
    uint16_t length = pgk_storage_encode(&self->firmware.state, 0, record);
    return PyBytes_FromStringAndSize((const char *)record, length);
}

static PyObject *Device_get_typing(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyBytes_FromStringAndSize(self->firmware.typing, self->firmware.typing_length);
}

static PyObject *Device_get_storage_error(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->firmware.storage_error);
}

static PyObject *Device_get_halted(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->firmware.halted);
}

static PyObject *Device_get_newest_slot(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->firmware.store.newest_slot);
}

static PyObject *Device_get_failed_slot(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->firmware.store.failed_slot);
}

static PyObject *Device_get_output(DeviceObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->output);
}

static PyMethodDef Device_methods[] = {
    {"power_on", (PyCFunction)Device_power_on, METH_VARARGS,
     "power_on(rtc, uptime, on_feedback, waiting, lock, keypad_timeout) -> storage result"},
    {"provision", (PyCFunction)Device_provision, METH_VARARGS,
     "provision(rtc, uptime, on_feedback, serial, key, starting_code, divider, restricted, "
     "test_code, count) -> provision result"},
    {"enter_token", (PyCFunction)Device_enter_token, METH_VARARGS,
     "enter_token(rtc, uptime, on_feedback, digits) -> outcome"},
    {"press", (PyCFunction)Device_press, METH_VARARGS,
     "press(rtc, uptime, on_feedback, key) -> (press result, outcome or None)"},
    {"poll", (PyCFunction)Device_poll, METH_VARARGS, "poll(rtc, uptime, on_feedback) -> None"},
    {"status", (PyCFunction)Device_status, METH_VARARGS, "status(rtc, uptime) -> tuple"},
    {"state_record", (PyCFunction)Device_state_record, METH_NOARGS,
     "The state in RAM as a storage record (docs/storage-layout.md)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Device_getset[] = {
    {"typing", (getter)Device_get_typing, NULL, "The digits of the token being typed.", NULL},
    {"storage_error", (getter)Device_get_storage_error, NULL,
     "The storage failure of the last call (a pgk_storage_result; 0 when none), kept while "
     "halted.",
     NULL},
    {"halted", (getter)Device_get_halted, NULL,
     "Whether the device stopped after its memory failed, until the next power-on.", NULL},
    {"newest_slot", (getter)Device_get_newest_slot, NULL,
     "The slot (0 = A, 1 = B) of the newest state stored; 1 when there is none.", NULL},
    {"failed_slot", (getter)Device_get_failed_slot, NULL,
     "The slot (0 = A, 1 = B) the storage failure was on.", NULL},
    {"output", (getter)Device_get_output, NULL, "The output switch, as last set.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Device_slots[] = {
    {Py_tp_doc, "One device running the C library: Device(memory)."},
    {Py_tp_init, Device_init},
    {Py_tp_traverse, Device_traverse},
    {Py_tp_clear, Device_clear},
    {Py_tp_dealloc, Device_dealloc},
    {Py_tp_methods, Device_methods},
    {Py_tp_getset, Device_getset},
    {0, NULL},
};

static PyType_Spec Device_spec = {
    .name = "paygkit.device." MODULE_NAME ".Device",
    .basicsize = sizeof(DeviceObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Device_slots,
};

/* ==== the module ============================================================ */

/* The library's codes and compile-time options, under their C names without
 * the PGK_ prefix: Python maps codes by name, so a renumbering in the
 * headers cannot silently change a meaning. */
static const struct {
    const char *name;
    long value;
} constants[] = {
    {"NV_SIZE", PGK_NV_SIZE},
    {"MAX_TYPED_DIGITS", PGK_MAX_TYPED_DIGITS},
    {"WITH_RESTRICTED", PGK_WITH_RESTRICTED},
    {"WITH_EXTENDED", PGK_WITH_EXTENDED},
    {"WINDOW_FORWARD", PGK_WINDOW_FORWARD},
    {"WINDOW_COUNTER_SYNC", PGK_WINDOW_COUNTER_SYNC},
    {"WINDOW_UNORDERED", PGK_WINDOW_UNORDERED},
    {"ACCEPT_RESET_TOKEN", PGK_ACCEPT_RESET_TOKEN},
    {"WITH_TEST_CODE", PGK_WITH_TEST_CODE},
    {"WITH_TAMPER", PGK_WITH_TAMPER},
    {"RTC_32BIT", PGK_RTC_32BIT},
    {"TAMPER_TOLERANCE_DIVISOR", PGK_TAMPER_TOLERANCE_DIVISOR},
    {"TAMPER_TOLERANCE_SECONDS", PGK_TAMPER_TOLERANCE_SECONDS},
    {"WAIT_FORGIVEN", PGK_WAIT_FORGIVEN},
    {"WAIT_BASE_SECONDS", PGK_WAIT_BASE_SECONDS},
    {"WAIT_CAP_SECONDS", PGK_WAIT_CAP_SECONDS},
    {"TEST_CODE_ACTIVE_SECONDS", PGK_TEST_CODE_ACTIVE_SECONDS},
    {"TEST_CODE_MAX_USES", PGK_TEST_CODE_MAX_USES},
    {"TEST_CODE_PERIOD_SECONDS", PGK_TEST_CODE_PERIOD_SECONDS},
    {"OUTCOME_APPLIED", PGK_OUTCOME_APPLIED},
    {"OUTCOME_ALREADY_USED", PGK_OUTCOME_ALREADY_USED},
    {"OUTCOME_INVALID", PGK_OUTCOME_INVALID},
    {"OUTCOME_BLOCKED", PGK_OUTCOME_BLOCKED},
    {"OUTCOME_TEST_CODE", PGK_OUTCOME_TEST_CODE},
    {"OUTCOME_MALFORMED", PGK_OUTCOME_MALFORMED},
    {"OUTCOME_NOT_PROVISIONED", PGK_OUTCOME_NOT_PROVISIONED},
    {"OUTCOME_STORAGE_ERROR", PGK_OUTCOME_STORAGE_ERROR},
    {"ADD_TIME", PGK_ADD_TIME},
    {"SET_TIME", PGK_SET_TIME},
    {"DISABLE_PAYG", PGK_DISABLE_PAYG},
    {"COUNTER_SYNC", PGK_COUNTER_SYNC},
    {"FEEDBACK_INVALID", PGK_FEEDBACK_INVALID},
    {"FEEDBACK_ALREADY_USED", PGK_FEEDBACK_ALREADY_USED},
    {"FEEDBACK_TIME_CHANGED", PGK_FEEDBACK_TIME_CHANGED},
    {"FEEDBACK_COUNTER_SYNCED", PGK_FEEDBACK_COUNTER_SYNCED},
    {"FEEDBACK_PAYG_DISABLED", PGK_FEEDBACK_PAYG_DISABLED},
    {"FEEDBACK_ENTRY_LOCKED", PGK_FEEDBACK_ENTRY_LOCKED},
    {"FEEDBACK_TEST_CODE", PGK_FEEDBACK_TEST_CODE},
    {"FEEDBACK_STATUS", PGK_FEEDBACK_STATUS},
    {"FEEDBACK_TAMPER", PGK_FEEDBACK_TAMPER},
    {"FEEDBACK_KEY_PRESS", PGK_FEEDBACK_KEY_PRESS},
    {"LOCKED_WAITING", PGK_LOCKED_WAITING},
    {"LOCKED_TEST_CODE_LIMIT", PGK_LOCKED_TEST_CODE_LIMIT},
    {"LOCKED_NOT_PROVISIONED", PGK_LOCKED_NOT_PROVISIONED},
    {"STATUS_SHOWN_UNLIMITED", PGK_STATUS_SHOWN_UNLIMITED},
    {"STATUS_SHOWN_TIME_LEFT", PGK_STATUS_SHOWN_TIME_LEFT},
    {"STATUS_SHOWN_TEST_MODE", PGK_STATUS_SHOWN_TEST_MODE},
    {"STATUS_SHOWN_NOT_PROVISIONED", PGK_STATUS_SHOWN_NOT_PROVISIONED},
    {"STATUS_SHOWN_TAMPER_LOCKED", PGK_STATUS_SHOWN_TAMPER_LOCKED},
    {"STATUS_SHOWN_INACTIVE", PGK_STATUS_SHOWN_INACTIVE},
    {"KEY_SHOWN_TYPING", PGK_KEY_SHOWN_TYPING},
    {"KEY_SHOWN_START_HINT", PGK_KEY_SHOWN_START_HINT},
    {"KEY_SHOWN_KEY_NOT_USED", PGK_KEY_SHOWN_KEY_NOT_USED},
    {"KEY_SHOWN_TOO_MANY_DIGITS", PGK_KEY_SHOWN_TOO_MANY_DIGITS},
    {"KEY_SHOWN_TIMED_OUT", PGK_KEY_SHOWN_TIMED_OUT},
    {"PRESS_KEY", PGK_PRESS_KEY},
    {"PRESS_TOKEN", PGK_PRESS_TOKEN},
    {"PRESS_STATUS", PGK_PRESS_STATUS},
    {"PROVISION_OK", PGK_PROVISION_OK},
    {"PROVISION_STORAGE_ERROR", PGK_PROVISION_STORAGE_ERROR},
    {"STORAGE_OK", PGK_STORAGE_OK},
    {"STORAGE_ERR_NV", PGK_STORAGE_ERR_NV},
    {"STORAGE_ERR_STATE", PGK_STORAGE_ERR_STATE},
    {"STORAGE_ERR_NEWER_LAYOUT", PGK_STORAGE_ERR_NEWER_LAYOUT},
    {"STORAGE_ERR_REFUSED", PGK_STORAGE_ERR_REFUSED},
    {"STORAGE_ERR_VERIFY", PGK_STORAGE_ERR_VERIFY},
    {"STORAGE_ERR_NOT_LOADED", PGK_STORAGE_ERR_NOT_LOADED},
};

static int module_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &Device_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Device", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    Py_DECREF(type);
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "paygkit.device." MODULE_NAME,
    .m_doc = "The C device library (firmware/lib) on Python ports; see cfirmware.py.",
    .m_size = 0,
    .m_slots = module_slots,
};

PyMODINIT_FUNC MODULE_INIT(void)
{
    return PyModuleDef_Init(&module_def);
}
