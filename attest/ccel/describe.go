package ccel

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Event types of the TCG PC Client Platform Firmware Profile.
const (
	EvPrebootCert              uint32 = 0x00
	EvPostCode                 uint32 = 0x01
	EvNoAction                 uint32 = 0x03
	EvSeparator                uint32 = 0x04
	EvAction                   uint32 = 0x05
	EvEventTag                 uint32 = 0x06
	EvSCRTMContents            uint32 = 0x07
	EvSCRTMVersion             uint32 = 0x08
	EvCPUMicrocode             uint32 = 0x09
	EvPlatformConfigFlags      uint32 = 0x0A
	EvTableOfDevices           uint32 = 0x0B
	EvCompactHash              uint32 = 0x0C
	EvIPL                      uint32 = 0x0D
	EvIPLPartitionData         uint32 = 0x0E
	EvNonhostCode              uint32 = 0x0F
	EvNonhostConfig            uint32 = 0x10
	EvNonhostInfo              uint32 = 0x11
	EvOmitBootDeviceEvents     uint32 = 0x12
	EvPostCode2                uint32 = 0x13
	EvEFIVariableDriverConfig  uint32 = 0x80000001
	EvEFIVariableBoot          uint32 = 0x80000002
	EvEFIBootServicesApp       uint32 = 0x80000003
	EvEFIBootServicesDriver    uint32 = 0x80000004
	EvEFIRuntimeServicesDrv    uint32 = 0x80000005
	EvEFIGPTEvent              uint32 = 0x80000006
	EvEFIAction                uint32 = 0x80000007
	EvEFIPlatformFirmwareBlob  uint32 = 0x80000008
	EvEFIHandoffTables         uint32 = 0x80000009
	EvEFIPlatformFirmwareBlob2 uint32 = 0x8000000A
	EvEFIHandoffTables2        uint32 = 0x8000000B
	EvEFIVariableBoot2         uint32 = 0x8000000C
	EvEFIGPTEvent2             uint32 = 0x8000000D
	EvEFIHCRTMEvent            uint32 = 0x80000010
	EvEFIVariableAuthority     uint32 = 0x800000E0
	EvEFISPDMFirmwareBlob      uint32 = 0x800000E1
	EvEFISPDMFirmwareConfig    uint32 = 0x800000E2
	EvEFISPDMDevicePolicy      uint32 = 0x800000E3
	EvEFISPDMDeviceAuthority   uint32 = 0x800000E4
)

var typeNames = map[uint32]string{
	EvPrebootCert: "EV_PREBOOT_CERT", EvPostCode: "EV_POST_CODE", 0x02: "EV_UNUSED", EvNoAction: "EV_NO_ACTION",
	EvSeparator: "EV_SEPARATOR", EvAction: "EV_ACTION", EvEventTag: "EV_EVENT_TAG",
	EvSCRTMContents: "EV_S_CRTM_CONTENTS", EvSCRTMVersion: "EV_S_CRTM_VERSION", EvCPUMicrocode: "EV_CPU_MICROCODE",
	EvPlatformConfigFlags: "EV_PLATFORM_CONFIG_FLAGS", EvTableOfDevices: "EV_TABLE_OF_DEVICES",
	EvCompactHash: "EV_COMPACT_HASH", EvIPL: "EV_IPL", EvIPLPartitionData: "EV_IPL_PARTITION_DATA",
	EvNonhostCode: "EV_NONHOST_CODE", EvNonhostConfig: "EV_NONHOST_CONFIG", EvNonhostInfo: "EV_NONHOST_INFO",
	EvOmitBootDeviceEvents: "EV_OMIT_BOOT_DEVICE_EVENTS", EvPostCode2: "EV_POST_CODE2",
	EvEFIVariableDriverConfig: "EV_EFI_VARIABLE_DRIVER_CONFIG", EvEFIVariableBoot: "EV_EFI_VARIABLE_BOOT",
	EvEFIBootServicesApp: "EV_EFI_BOOT_SERVICES_APPLICATION", EvEFIBootServicesDriver: "EV_EFI_BOOT_SERVICES_DRIVER",
	EvEFIRuntimeServicesDrv: "EV_EFI_RUNTIME_SERVICES_DRIVER", EvEFIGPTEvent: "EV_EFI_GPT_EVENT",
	EvEFIAction: "EV_EFI_ACTION", EvEFIPlatformFirmwareBlob: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	EvEFIHandoffTables: "EV_EFI_HANDOFF_TABLES", EvEFIPlatformFirmwareBlob2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	EvEFIHandoffTables2: "EV_EFI_HANDOFF_TABLES2", EvEFIVariableBoot2: "EV_EFI_VARIABLE_BOOT2",
	EvEFIGPTEvent2: "EV_EFI_GPT_EVENT2", EvEFIHCRTMEvent: "EV_EFI_HCRTM_EVENT",
	EvEFIVariableAuthority: "EV_EFI_VARIABLE_AUTHORITY", EvEFISPDMFirmwareBlob: "EV_EFI_SPDM_FIRMWARE_BLOB",
	EvEFISPDMFirmwareConfig: "EV_EFI_SPDM_FIRMWARE_CONFIG", EvEFISPDMDevicePolicy: "EV_EFI_SPDM_DEVICE_POLICY",
	EvEFISPDMDeviceAuthority: "EV_EFI_SPDM_DEVICE_AUTHORITY",
}

// TypeName names an event type, or gives it in hex.
func TypeName(t uint32) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("EV_%#08x", t)
}

// maxDescription bounds a description: it goes into claims and messages.
const maxDescription = 160

// Describe returns a short, printable text from the event's data for the
// types that carry one: the text of EV_IPL, EV_EFI_ACTION and similar
// events (a grub command, a kernel command line), the variable name of
// EFI variable events, the description of firmware blob and handoff table
// events. The data is not measured unless DataIsDigested says so.
func (e *Event) Describe() string {
	var s string
	switch e.Type {
	case EvEFIVariableDriverConfig, EvEFIVariableBoot, EvEFIVariableBoot2, EvEFIVariableAuthority:
		s = variableName(e.Data)
	case EvEFIPlatformFirmwareBlob2, EvEFIHandoffTables2:
		if len(e.Data) > 0 && int(e.Data[0]) < len(e.Data) {
			s = text(e.Data[1 : 1+int(e.Data[0])])
		}
	case EvEventTag:
		// TCG_PCClientTaggedEvent: id, size, data.
		if len(e.Data) >= 8 {
			n := binary.LittleEndian.Uint32(e.Data[4:])
			if uint64(n) <= uint64(len(e.Data)-8) {
				s = text(e.Data[8 : 8+n])
			}
		}
	case EvPostCode, EvAction, EvEFIAction, EvIPL, EvSCRTMVersion, EvPlatformConfigFlags, EvCompactHash, EvOmitBootDeviceEvents, EvNonhostInfo:
		s = text(e.Data)
	}
	return s
}

// variableName reads the name of a UEFI_VARIABLE_DATA: GUID, name length
// (UTF-16 code units), data length, name.
func variableName(b []byte) string {
	if len(b) < 32 {
		return ""
	}
	n := binary.LittleEndian.Uint64(b[16:])
	if n > uint64(len(b)-32)/2 {
		return ""
	}
	return utf16Text(b[32 : 32+2*n])
}

// text returns b as printable text if it is text (UTF-8 or UTF-16LE),
// without trailing NULs, cut to maxDescription; else "".
func text(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return ""
	}
	if utf8.Valid(b) && printable(string(b)) {
		return clip(string(b))
	}
	// UEFI writes some texts in UTF-16: accept it when every other byte is
	// zero (Latin text), so that binary data is not read as CJK.
	for i := 1; i < len(b); i += 2 {
		if b[i] != 0 {
			return ""
		}
	}
	return utf16Text(b)
}

func utf16Text(b []byte) string {
	if len(b)%2 != 0 {
		return ""
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	s := string(utf16.Decode(u))
	if s == "" || !printable(s) {
		return ""
	}
	return clip(s)
}

func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != '\t' && r != '\n' {
			return false // no control, format or terminal escape characters
		}
	}
	return true
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDescription {
		cut := maxDescription
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
