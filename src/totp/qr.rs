//! QR codes of an otpauth URI, as SVG ([`qr_svg`]) and PNG ([`qr_png`], feature `qr-png`,
//! on by default). Nothing is rendered unless asked for.

use crate::error::Error;

/// The QR code of `data` as a standalone SVG document.
///
/// # Errors
/// [`Error::InvalidInput`] when the data is too long for a QR code.
pub fn qr_svg(data: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .map_err(|_| Error::InvalidInput("too long for a QR code"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The QR code of `data` as PNG bytes. Needs the `qr-png` feature (default), which brings in
/// the `image` crate; [`qr_svg`] needs none.
///
/// # Errors
/// [`Error::InvalidInput`] when the data is too long for a QR code.
#[cfg(feature = "qr-png")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
pub fn qr_png(data: &str) -> Result<Vec<u8>, Error> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .map_err(|_| Error::InvalidInput("too long for a QR code"))?;
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|_| Error::InvalidInput("QR image could not be encoded"))?;
    Ok(out.into_inner())
}
